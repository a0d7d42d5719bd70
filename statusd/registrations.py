"""RegisterMessages: a sender registers what it sent, before any report of it arrives.

:func:`checked_registration` validates one registration and completes it (recipient in
E.164, submit time, report timeout resolved from the settings), so the stored registration
says everything the report-timeout sweeper (:mod:`statusd.sweeper`) needs. :class:`Registrar`
commits them through the group committer as registration entries of the messages' histories
(:func:`statusd.model.registration_entry`), so a registration is durable before the answer,
idempotent (its dedupe key is fixed), merged with the reports by the status fold, and a Watch
change like a report.

:func:`observe_receipts` feeds the receipt-latency histograms after a commit, from the
receipts the store's commit returned (:class:`statusd.storage.base.Receipt`): for each
registered message whose final report became current, the time from its submit time to the
report. Nothing is read back from the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import phonenumbers

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common.providers import PROVIDER_NAMES
from statusd import errors, metrics, model
from statusd.committer import GroupCommitter
from statusd.storage.base import DUPLICATE, Outcome, Receipt

#: The most registrations one RegisterMessages call may carry.
MAX_REGISTRATIONS = 1000
MAX_ID_LENGTH = 1024
MAX_NAME_LENGTH = 64
#: The longest report timeout a registration may name (a year).
MAX_TIMEOUT_SECONDS = 366 * 86_400


def normalized_recipient(value: str, where: str) -> str:
    """``value`` in E.164 (``+`` and digits); empty stays empty; InvalidArgument when it is not
    a possible international number."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value if value.startswith("+") else "+" + value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise errors.InvalidArgument(
            f"{where}.recipient: not a possible international number in E.164 (+ and digits)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def checked_registration(
    registration: pb.MessageRegistration,
    index: int,
    now_micros: int,
    default_timeout: Callable[[str], int],
) -> pb.MessageRegistration:
    """Validates one registration and completes it in place: recipient in E.164, submit
    time (now when unset) and report timeout (``default_timeout(provider)`` microseconds when
    unset). InvalidArgument names the field."""
    where = f"registrations[{index}]"
    if registration.provider not in PROVIDER_NAMES:
        raise errors.InvalidArgument(
            f"{where}.provider: unknown provider {registration.provider[:MAX_NAME_LENGTH]!r}; "
            f"known: {', '.join(sorted(PROVIDER_NAMES))}"
        )
    if len(registration.account) > MAX_NAME_LENGTH:
        raise errors.InvalidArgument(f"{where}.account: at most {MAX_NAME_LENGTH} characters")
    if not registration.message_id or len(registration.message_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument(f"{where}.message_id: 1 to {MAX_ID_LENGTH} characters")
    if len(registration.client_ref) > MAX_ID_LENGTH:
        raise errors.InvalidArgument(f"{where}.client_ref: at most {MAX_ID_LENGTH} characters")
    registration.recipient = normalized_recipient(registration.recipient.strip(), where)
    if not registration.HasField("submit_time"):
        registration.submit_time.FromMicroseconds(now_micros)
    elif registration.submit_time.seconds < 0 or not 0 <= registration.submit_time.nanos < 10**9:
        raise errors.InvalidArgument(f"{where}.submit_time: not a valid time after 1970")
    timeout = registration.report_timeout
    if not registration.HasField("report_timeout"):
        timeout.FromMicroseconds(default_timeout(registration.provider))
    elif not (0 < timeout.ToMicroseconds() <= MAX_TIMEOUT_SECONDS * 1_000_000):
        raise errors.InvalidArgument(
            f"{where}.report_timeout: more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds"
        )
    return registration


class Registrar:
    """Commits registrations (see the module docstring)."""

    def __init__(self, committer: GroupCommitter, default_timeout: Callable[[str], int]) -> None:
        """``default_timeout(provider)``: a provider's report timeout in microseconds."""
        self.committer = committer
        self.default_timeout = default_timeout

    async def register(
        self, request: status_pb.RegisterMessagesRequest, now_micros: int
    ) -> status_pb.RegisterMessagesResponse:
        """Validates every registration, then commits them all; answers after the commit."""
        count = len(request.registrations)
        if not 0 < count <= MAX_REGISTRATIONS:
            raise errors.InvalidArgument(
                f"registrations: 1 to {MAX_REGISTRATIONS} per call (got {count})"
            )
        registrations = [
            checked_registration(registration, index, now_micros, self.default_timeout)
            for index, registration in enumerate(request.registrations)
        ]
        entries = [model.registration_entry(r, now_micros) for r in registrations]
        with self.committer.call():
            outcomes = await self.committer.submit(entries)
        answers = [registration_outcome(outcome) for outcome in outcomes]
        registered = Counter(
            (entry.provider, answer) for entry, answer in zip(entries, answers, strict=True)
        )
        for (provider, answer), number in registered.items():
            label = status_pb.RegistrationOutcome.Name(answer).removeprefix("REGISTRATION_OUTCOME_")
            metrics.REGISTRATIONS.labels(provider, label.lower()).inc(number)
        duplicates = answers.count(status_pb.REGISTRATION_OUTCOME_DUPLICATE)
        return status_pb.RegisterMessagesResponse(
            registered=len(answers) - duplicates, duplicates=duplicates, outcomes=answers
        )


def registration_outcome(outcome: Outcome) -> status_pb.RegistrationOutcome.ValueType:
    """A registration entry's commit outcome as the answer says it: a new entry (current or
    not, when a report came first) is REGISTERED; a dedupe hit is DUPLICATE."""
    if outcome == DUPLICATE:
        return status_pb.REGISTRATION_OUTCOME_DUPLICATE
    return status_pb.REGISTRATION_OUTCOME_REGISTERED


def observe_receipts(receipts: Sequence[Receipt]) -> None:
    """Observes the receipt latency of each receipt (never below zero)."""
    for receipt in receipts:
        latency = max((receipt.final_time - receipt.submit_time) / 1_000_000, 0.0)
        metrics.child(metrics.RECEIPT_LATENCY, receipt.provider).observe(latency)
        metrics.child(metrics.RECEIPT_LATENCY_BY_COUNTRY, receipt.country).observe(latency)

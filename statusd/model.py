"""The status model: pure functions, no I/O (DESIGN.md §3).

Each message is keyed by ``(provider, account, message_id)``. Reports arrive duplicated,
late and out of order; the current status is the report with the greatest :func:`order_key`
over every distinct report of the message. Because it is a maximum, applying reports one
at a time ("set when the stored key is smaller") gives the same state as :func:`fold` over
the whole history, in any order and with any number of duplicates. The stores rely on
exactly that, and ``tests/statusd/test_model.py`` property-tests it.

Registrations (RegisterMessages) and report timeouts join the same fold as *entries* of a
message's history that are not reports: a registration entry (:func:`registration_entry`,
``report.registration`` set, status ACCEPTED) sorts below every real report, so it is
current only while the message has no report; a timeout entry (:func:`timeout_entry`,
status NO_REPORT) is weakly terminal and sorts below every real final report, so a late
receipt still wins. Each has a fixed dedupe key, so registering twice, or two sweepers
timing a message out at once, changes nothing. Neither counts in ``report_count``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

import phonenumbers

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.phone import plain_parts
from statusd.status_fields import NAMES as FIELD_NAMES

Status: TypeAlias = pb.DeliveryStatus.ValueType

ACCEPTED: Final = pb.DELIVERY_STATUS_ACCEPTED
QUEUED: Final = pb.DELIVERY_STATUS_QUEUED
SENT: Final = pb.DELIVERY_STATUS_SENT
DELIVERED: Final = pb.DELIVERY_STATUS_DELIVERED
UNDELIVERED: Final = pb.DELIVERY_STATUS_UNDELIVERED
EXPIRED: Final = pb.DELIVERY_STATUS_EXPIRED
REJECTED: Final = pb.DELIVERY_STATUS_REJECTED
FAILED: Final = pb.DELIVERY_STATUS_FAILED
UNKNOWN: Final = pb.DELIVERY_STATUS_UNKNOWN
NO_REPORT: Final = pb.DELIVERY_STATUS_NO_REPORT

#: The dedupe keys of the entries that are not reports (one of each per message).
REGISTRATION_EVENT_ID: Final = "dlrhub:registration"
TIMEOUT_EVENT_ID: Final = "dlrhub:report-timeout"

#: Terminal statuses: once one is reported, non-terminal reports never override it.
TERMINAL: Final[frozenset[Status]] = frozenset({DELIVERED, UNDELIVERED, EXPIRED, REJECTED, FAILED})
#: Rank of the non-terminal statuses: a higher rank wins among non-terminal reports.
RANK: Final[dict[Status, int]] = {ACCEPTED: 10, QUEUED: 20, SENT: 30}

# Classes, compared first: terminal > weak-terminal (UNKNOWN, NO_REPORT) > non-terminal.
NON_TERMINAL_CLASS: Final = 0
WEAK_TERMINAL_CLASS: Final = 1
TERMINAL_CLASS: Final = 2

_TIME_DIGITS: Final = 16  # microseconds since the epoch, good until the year 2286
_SEQUENCE_DIGITS: Final = 19  # a non-negative int64
_MAX_TIME: Final = 10**_TIME_DIGITS - 1
_MAX_SEQUENCE: Final = 2**63 - 1

MessageKeyTuple = tuple[str, str, str]


def message_key(report: pb.DeliveryReport) -> MessageKeyTuple:
    """``(provider, account, message_id)``: the identity of a message."""
    return (report.provider, report.account, report.message_id)


def micros(timestamp: object) -> int:
    """A ``google.protobuf.Timestamp`` as whole microseconds since the epoch."""
    seconds: int = timestamp.seconds  # type: ignore[attr-defined]
    nanos: int = timestamp.nanos  # type: ignore[attr-defined]
    return seconds * 1_000_000 + nanos // 1_000


def effective_time(report: pb.DeliveryReport) -> int:
    """The report's time in microseconds: ``event_time``, else ``received_time``."""
    stamp = report.event_time if report.HasField("event_time") else report.received_time
    return min(max(micros(stamp), 0), _MAX_TIME)


def status_class(report: pb.DeliveryReport) -> int:
    """Terminal, weak-terminal or non-terminal; the provider's finality flag makes a
    non-terminal status terminal, while UNKNOWN stays weak so a late real receipt wins."""
    if report.status in TERMINAL:
        return TERMINAL_CLASS
    if report.status in (UNKNOWN, NO_REPORT):
        return WEAK_TERMINAL_CLASS
    return TERMINAL_CLASS if report.final else NON_TERMINAL_CLASS


def dedupe_key(report: pb.DeliveryReport) -> str:
    """The provider's event id where it sent one, else a SHA-256 over what makes two
    reports the same event: provider, account, message id, raw status, error code, the
    provider's finality flag, and the provider's event time and sequence."""
    if report.event_id:
        return report.event_id
    event_time = str(micros(report.event_time)) if report.HasField("event_time") else ""
    parts = (
        report.provider,
        report.account,
        report.message_id,
        report.provider_status,
        report.error.code,
        event_time,
        str(report.sequence) if report.sequence else "",
        "final" if report.final else "",
    )
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return "sha256:" + digest


def order_key(report: pb.DeliveryReport) -> str:
    """A fixed-width string whose maximum is the current report (DESIGN.md §3).

    Compared left to right: class; among terminal reports the later time, then DELIVERED
    over other terminal statuses; among non-terminal reports the higher rank, then the later
    time; then the provider's sequence; last the dedupe key, so full ties resolve the same
    way everywhere. ``report.event_id`` must already hold the dedupe key.
    """
    klass = status_class(report)
    # A timeout entry sorts below every real weak-terminal report (time 0).
    when = f"{0 if is_timeout(report) else effective_time(report):0{_TIME_DIGITS}d}"
    sequence = f"{min(max(report.sequence, 0), _MAX_SEQUENCE):0{_SEQUENCE_DIGITS}d}"
    if klass == NON_TERMINAL_CLASS:
        # A registration entry has rank 0: below every real report.
        rank = 0 if is_registration(report) else RANK.get(report.status, 0)
        middle = f"{rank:02d}{when}"
    else:
        middle = f"{when}{1 if report.status == DELIVERED else 0:02d}"
    return f"{klass}{middle}{sequence}|{report.event_id}"


def is_registration(report: pb.DeliveryReport) -> bool:
    """Whether the entry records a registration (not a report)."""
    return report.HasField("registration")


def is_timeout(report: pb.DeliveryReport) -> bool:
    """Whether the entry records a report timeout (not a report): NO_REPORT, which no
    provider sends (IngestReports refuses it)."""
    return report.status == NO_REPORT


def is_report(report: pb.DeliveryReport) -> bool:
    """Whether the entry is a real report, which ``report_count`` counts."""
    return not is_registration(report) and not is_timeout(report)


def final_time(report: pb.DeliveryReport) -> int | None:
    """The time of a real final report (terminal or UNKNOWN), for the receipt latency; None
    for any other entry."""
    if is_report(report) and status_class(report) != NON_TERMINAL_CLASS:
        return effective_time(report)
    return None


def awaiting_report(order_key: str, report_deadline: int | None) -> bool:
    """Whether a message waits for a report: registered and its current entry non-terminal
    (the condition of the sweeper's index, in both stores: ``order_key < "1"``)."""
    return report_deadline is not None and order_key < str(WEAK_TERMINAL_CLASS)


@functools.lru_cache(maxsize=65536)
def country_of(recipient: str) -> str:
    """The ISO 3166-1 alpha-2 country of an E.164 number ("" when it names none), by
    libphonenumber's ranges."""
    recipient = recipient.rpartition(":")[2]  # a channel prefix: whatsapp:+15558675310
    if not recipient.startswith("+"):
        return ""
    quick = _region_without_parse(recipient[1:])
    if quick is not None:
        return quick if len(quick) == 2 and quick.isalpha() else ""
    try:
        number = phonenumbers.parse(recipient, None)
    except phonenumbers.NumberParseException:
        return ""
    # A number outside every known range (a test or fictional number) gets its calling
    # code's main country (+44 → GB); a non-geographic code ("001") gets none.
    region = phonenumbers.region_code_for_number(
        number
    ) or phonenumbers.region_code_for_country_code(number.country_code or 0)
    return region if len(region) == 2 and region.isalpha() else ""


def _region_without_parse(digits: str) -> str | None:
    """The region of a plain international number (ASCII digits after the ``+``) as
    libphonenumber's parse and ``region_code_for_number`` answer it, without the parse: a
    calling code of one region names it whatever the rest; for a code of several regions the
    number is built from its parts and the regions' ranges decide, as after a parse, when
    the parse would keep the national part as written (:mod:`dlrhub_common.phone`); None
    for anything else, which takes the full parse."""
    plain = plain_parts(digits)
    if plain is None:
        return None
    if len(plain.regions) == 1:
        return plain.regions[0]
    if not plain.kept_as_written:
        return None
    found: str | None = phonenumbers.region_code_for_number(plain.number())
    return found or phonenumbers.region_code_for_country_code(plain.code)


def registration_micros(registration: pb.MessageRegistration) -> tuple[int, int]:
    """``(submit_time, report_deadline)`` of a stored registration, in microseconds (the
    servicer sets submit_time and report_timeout before it stores one)."""
    submit = micros(registration.submit_time)
    timeout = registration.report_timeout
    return submit, submit + timeout.seconds * 1_000_000 + timeout.nanos // 1_000


def registration_entry(registration: pb.MessageRegistration, now_micros: int) -> pb.DeliveryReport:
    """The history entry that records a registration: status ACCEPTED at the submit time,
    carrying the sender's client_ref and recipient."""
    entry = pb.DeliveryReport(
        provider=registration.provider,
        account=registration.account,
        message_id=registration.message_id,
        status=ACCEPTED,
        recipient=registration.recipient,
        client_ref=registration.client_ref,
        event_id=REGISTRATION_EVENT_ID,
        registration=registration,
    )
    entry.event_time.CopyFrom(registration.submit_time)
    entry.sent_time.CopyFrom(registration.submit_time)
    entry.received_time.FromMicroseconds(now_micros)
    return entry


def timeout_entry(key: MessageKeyTuple, deadline: int, now_micros: int) -> pb.DeliveryReport:
    """The history entry that records a report timeout: NO_REPORT at the deadline."""
    provider, account, message_id = key
    entry = pb.DeliveryReport(
        provider=provider,
        account=account,
        message_id=message_id,
        status=NO_REPORT,
        event_id=TIMEOUT_EVENT_ID,
    )
    entry.event_time.FromMicroseconds(deadline)
    entry.received_time.FromMicroseconds(now_micros)
    return entry


def terminal_bit(status: Status) -> int:
    """A bit per terminal status; OR-ing them tells whether two different ones were seen."""
    return 1 << int(status) if status in TERMINAL else 0


def has_conflict(terminal_mask: int) -> bool:
    """True when the mask holds two or more different terminal statuses."""
    return terminal_mask.bit_count() >= 2


def history_key(report: pb.DeliveryReport) -> tuple[int, int, str]:
    """Sort key of the history: oldest event first, independent of arrival order."""
    return (effective_time(report), report.sequence, report.event_id)


def fill_event_id(report: pb.DeliveryReport) -> pb.DeliveryReport:
    """Sets an empty ``event_id`` to :func:`dedupe_key`, in place; returns the report.

    The one place a report gets its dedupe key (statusd's ingest and :func:`with_event_id`)."""
    if not report.event_id:
        report.event_id = dedupe_key(report)
    return report


def with_event_id(report: pb.DeliveryReport) -> pb.DeliveryReport:
    """The report with ``event_id`` filled by :func:`dedupe_key` (a copy when it changes)."""
    if report.event_id:
        return report
    filled = pb.DeliveryReport()
    filled.CopyFrom(report)
    return fill_event_id(filled)


@dataclass(frozen=True)
class MessageState:
    """A message's state as the fold computes it."""

    latest: pb.DeliveryReport
    order_key: str
    #: Distinct real reports (registration and timeout entries left out).
    report_count: int
    terminal_mask: int
    #: Every distinct entry, reports and the registration and timeout entries alike.
    history: tuple[pb.DeliveryReport, ...]
    #: The registration the message's registration entry carries; None when unregistered.
    registration: pb.MessageRegistration | None = None
    #: The status fields (:mod:`statusd.status_fields`): the first value an entry carries.
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> Status:
        return self.latest.status

    @property
    def conflict(self) -> bool:
        return has_conflict(self.terminal_mask)

    @property
    def report_deadline(self) -> int | None:
        return None if self.registration is None else registration_micros(self.registration)[1]

    @property
    def awaiting_report(self) -> bool:
        return awaiting_report(self.order_key, self.report_deadline)

    @property
    def country(self) -> str:
        return country_of(dict(self.fields).get("recipient", ""))


def fold(reports: Iterable[pb.DeliveryReport]) -> dict[MessageKeyTuple, MessageState]:
    """Every message's state from scratch: the reference the stores must agree with.

    Entries count in the order given where only the first counts (a dedupe key seen again,
    the status fields filled by the first entry that carries them)."""
    seen: dict[MessageKeyTuple, dict[str, pb.DeliveryReport]] = {}
    for report in reports:
        filled = with_event_id(report)
        seen.setdefault(message_key(filled), {}).setdefault(filled.event_id, filled)
    states = {}
    for key, distinct in seen.items():
        keyed = {order_key(report): report for report in distinct.values()}
        best = max(keyed)
        mask = 0
        for report in distinct.values():
            mask |= terminal_bit(report.status)
        registered = distinct.get(REGISTRATION_EVENT_ID)
        fields = {
            name: next((value for r in distinct.values() if (value := getattr(r, name))), "")
            for name in FIELD_NAMES
        }
        states[key] = MessageState(
            latest=keyed[best],
            order_key=best,
            report_count=sum(1 for report in distinct.values() if is_report(report)),
            terminal_mask=mask,
            history=tuple(sorted(distinct.values(), key=history_key)),
            registration=registered.registration if registered is not None else None,
            fields=tuple(fields.items()),
        )
    return states

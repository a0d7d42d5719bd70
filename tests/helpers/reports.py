"""Report factories and Hypothesis strategies shared by the statusd tests."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model

#: The statuses a provider's report may carry (NO_REPORT is statusd's own).
STATUSES = [
    value
    for value in pb.DeliveryStatus.values()
    if value not in (pb.DELIVERY_STATUS_UNSPECIFIED, pb.DELIVERY_STATUS_NO_REPORT)
]
BASE_MICROS = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def report(
    message_id: str = "m-1",
    status: int = pb.DELIVERY_STATUS_DELIVERED,
    *,
    provider: str = "infobip",
    account: str = "",
    event_offset: int | None = 0,
    received_offset: int = 0,
    provider_status: str | None = None,
    event_id: str = "",
    sequence: int = 0,
    final: bool = False,
    error_code: str = "",
    recipient: str = "+41790000000",
    client_ref: str = "",
) -> pb.DeliveryReport:
    """A report; times are offsets in seconds from :data:`BASE_MICROS` (None: no event time)."""
    made = pb.DeliveryReport(
        provider=provider,
        account=account,
        message_id=message_id,
        status=status,  # type: ignore[arg-type]
        provider_status=provider_status or pb.DeliveryStatus.Name(status),  # type: ignore[arg-type]
        event_id=event_id,
        sequence=sequence,
        final=final,
        recipient=recipient,
        client_ref=client_ref,
    )
    made.error.code = error_code
    if event_offset is not None:
        made.event_time.FromMicroseconds(BASE_MICROS + event_offset * 1_000_000)
    made.received_time.FromMicroseconds(BASE_MICROS + received_offset * 1_000_000)
    return made


@st.composite
def reports(
    draw: st.DrawFn, message_ids: tuple[str, ...] = ("m-1", "m-2", "m-3")
) -> pb.DeliveryReport:
    """An arbitrary report for one of a few messages, with colliding times and statuses."""
    return report(
        message_id=draw(st.sampled_from(message_ids)),
        status=draw(st.sampled_from(STATUSES)),
        account=draw(st.sampled_from(["", "eu"])),
        event_offset=draw(st.one_of(st.none(), st.integers(0, 5))),
        received_offset=draw(st.integers(0, 5)),
        provider_status=draw(st.sampled_from(["a", "b", "c"])),
        sequence=draw(st.integers(0, 3)),
        final=draw(st.booleans()),
        error_code=draw(st.sampled_from(["", "20"])),
        event_id=draw(st.sampled_from(["", "", "", "evt-1", "evt-2"])),
    )


def registration(
    message_id: str = "m-1",
    *,
    provider: str = "infobip",
    account: str = "",
    client_ref: str = "order-1",
    recipient: str = "+41790000000",
    submit_offset: int = 0,
    timeout_seconds: int = 3600,
) -> pb.MessageRegistration:
    """A registration as statusd stores it (times: offsets in seconds from BASE_MICROS)."""
    made = pb.MessageRegistration(
        provider=provider,
        account=account,
        message_id=message_id,
        client_ref=client_ref,
        recipient=recipient,
    )
    made.submit_time.FromMicroseconds(BASE_MICROS + submit_offset * 1_000_000)
    made.report_timeout.FromSeconds(timeout_seconds)
    return made


def registered(message_id: str = "m-1", **values: Any) -> pb.DeliveryReport:
    """The history entry of :func:`registration` (received at BASE_MICROS)."""
    return model.registration_entry(registration(message_id, **values), BASE_MICROS)


@st.composite
def histories(
    draw: st.DrawFn, message_ids: tuple[str, ...] = ("m-1", "m-2", "m-3")
) -> list[pb.DeliveryReport]:
    """Distinct entries of a few messages: reports (:func:`reports`), and for some messages
    a registration entry (its client_ref only the registration carries; its recipient, when
    it has one, the same as the reports'), so that every order of them has one fold."""
    entries = filled(*draw(st.lists(reports(message_ids), max_size=12)))
    for message_id in message_ids:
        for account in ("", "eu"):
            if draw(st.booleans()):
                entries.append(
                    registered(
                        message_id,
                        account=account,
                        client_ref=draw(st.sampled_from(["", "order-1"])),
                        recipient=draw(st.sampled_from(["", "+41790000000"])),
                        submit_offset=draw(st.integers(-5, 5)),
                        timeout_seconds=draw(st.integers(1, 10)),
                    )
                )
    distinct = {(model.message_key(entry), entry.event_id): entry for entry in entries}
    return list(distinct.values())


def filled(*items: pb.DeliveryReport) -> list[pb.DeliveryReport]:
    """The reports with their dedupe keys, as statusd hands them to a store."""
    return [model.with_event_id(item) for item in items]


def key(message_id: str = "m-1", provider: str = "infobip", account: str = "") -> pb.MessageKey:
    return pb.MessageKey(provider=provider, account=account, message_id=message_id)


def random_reports(seed: int, count: int, *, messages: int = 5) -> list[pb.DeliveryReport]:
    """``count`` distinct reports (dedupe keys filled) for a few messages, with colliding
    statuses and times, some without an event time or a recipient: the fold's hard cases."""
    rng = random.Random(seed)
    return filled(
        *[
            report(
                message_id=f"m-{rng.randrange(messages)}",
                status=rng.choice(STATUSES),
                event_offset=rng.choice([None, *range(6)]),
                received_offset=seed * 10_000 + index,
                provider_status=f"s-{seed}-{index}",
                recipient=rng.choice(["", "+41790000001"]),
                client_ref=rng.choice(["", "ref"]),
            )
            for index in range(count)
        ]
    )

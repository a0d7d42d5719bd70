"""The status model: pure functions, no I/O (DESIGN.md §3).

Each message is keyed by ``(provider, account, message_id)``. Reports arrive duplicated,
late and out of order; the current status is the report with the greatest :func:`order_key`
over every distinct report of the message. Because it is a maximum, applying reports one
at a time ("set when the stored key is smaller") gives the same state as :func:`fold` over
the whole history, in any order and with any number of duplicates. The stores rely on
exactly that, and ``tests/statusd/test_model.py`` property-tests it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from dlrhub.v1 import delivery_report_pb2 as pb

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

#: Terminal statuses: once one is reported, non-terminal reports never override it.
TERMINAL: Final[frozenset[Status]] = frozenset({DELIVERED, UNDELIVERED, EXPIRED, REJECTED, FAILED})
#: Rank of the non-terminal statuses: a higher rank wins among non-terminal reports.
RANK: Final[dict[Status, int]] = {ACCEPTED: 10, QUEUED: 20, SENT: 30}

# Classes, compared first: terminal > weak-terminal (UNKNOWN) > non-terminal.
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
    if report.status == UNKNOWN:
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
    when = f"{effective_time(report):0{_TIME_DIGITS}d}"
    sequence = f"{min(max(report.sequence, 0), _MAX_SEQUENCE):0{_SEQUENCE_DIGITS}d}"
    if klass == NON_TERMINAL_CLASS:
        middle = f"{RANK.get(report.status, 0):02d}{when}"
    else:
        middle = f"{when}{1 if report.status == DELIVERED else 0:02d}"
    return f"{klass}{middle}{sequence}|{report.event_id}"


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
    report_count: int
    terminal_mask: int
    history: tuple[pb.DeliveryReport, ...]

    @property
    def status(self) -> Status:
        return self.latest.status

    @property
    def conflict(self) -> bool:
        return has_conflict(self.terminal_mask)


def fold(reports: Iterable[pb.DeliveryReport]) -> dict[MessageKeyTuple, MessageState]:
    """Every message's state from scratch: the reference the stores must agree with."""
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
        states[key] = MessageState(
            latest=keyed[best],
            order_key=best,
            report_count=len(distinct),
            terminal_mask=mask,
            history=tuple(sorted(distinct.values(), key=history_key)),
        )
    return states

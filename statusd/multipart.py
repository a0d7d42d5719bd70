"""Multipart messages: the status of a whole message from the statuses of its parts.

Some providers report the parts of one message separately: Vonage's SMS API sends a receipt
per part of a long SMS, Plivo names a ``ParentMessageUUID``, Telnyx reports each recipient of
a group message. Each part is stored as its own message carrying ``parent_message_id``, and
stays readable by its own id. A parent id with no report of its own is answered at read time
with the status :func:`aggregate` computes from its parts (providers.md §11.4):

* ``worst`` (the default): a failed part makes the message failed (the most severe failure
  among the parts); otherwise it is DELIVERED only when every part is, UNKNOWN when every part
  is final but some say nothing, and while parts are on their way the least advanced one.
* ``any_delivered``: DELIVERED as soon as one part is; otherwise as ``worst``.

``partial`` flags a status that does not hold for every part. :func:`aggregate` is pure and
reads only the set of part statuses; each part's status is already independent of the order
its reports came in (:mod:`statusd.model`), so the parent's status is too. Reading the
parts from the store is :meth:`statusd.reads.Reader.read_parent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model

Policy = Literal["worst", "any_delivered"]
POLICIES: tuple[Policy, ...] = ("worst", "any_delivered")
#: Failure statuses, most severe first: a provider-side failure or a refusal says more about
#: what to fix than an expiry or a handset that could not be reached. (judgment)
SEVERITY: tuple[model.Status, ...] = (
    model.FAILED,
    model.REJECTED,
    model.EXPIRED,
    model.UNDELIVERED,
)


@dataclass(frozen=True)
class Aggregate:
    """A parent's status: the status, whether it holds for every part, how many parts the
    message has, and the part whose report decided it."""

    status: model.Status
    partial: bool
    part_count: int
    decided_by: pb.MessageStatus


def part_order(part: pb.MessageStatus) -> tuple[int, int, str]:
    """Parts by index (unknown indexes last), then by id: a stable, arrival-independent order."""
    index = part.latest_report.part_index
    return (0 if index else 1, index, part.message_id)


def _status(part: pb.MessageStatus) -> model.Status:
    """A part's status; a provider's final word on a non-terminal status says nothing."""
    if part.latest_report.final and part.status in model.RANK:
        return model.UNKNOWN
    return part.status


def aggregate(parts: Sequence[pb.MessageStatus], policy: Policy = "worst") -> Aggregate:
    """The parent's status from its parts' statuses (at least one part)."""
    if not parts:
        raise ValueError("a multipart message needs at least one part")
    ordered = sorted(parts, key=part_order)
    count = max(len(parts), *(part.latest_report.part_count for part in parts))
    missing = count - len(parts)
    statuses = [_status(part) for part in ordered]
    delivered = [
        part for part, status in zip(ordered, statuses, strict=True) if status == model.DELIVERED
    ]
    if policy == "any_delivered" and delivered:
        return Aggregate(model.DELIVERED, len(delivered) < count, count, delivered[0])
    failed = [status for status in statuses if status in SEVERITY]
    if failed:
        worst = min(failed, key=SEVERITY.index)
        decided = ordered[statuses.index(worst)]
        return Aggregate(worst, bool(delivered), count, decided)
    pending = [status for status in statuses if status in model.RANK]
    if not pending and not missing:
        if model.UNKNOWN in statuses:
            decided = ordered[statuses.index(model.UNKNOWN)]
            return Aggregate(model.UNKNOWN, bool(delivered), count, decided)
        return Aggregate(model.DELIVERED, False, count, ordered[0])
    # Still on the way: the least advanced part; a part not reported yet was at least
    # accepted, since the provider reported its siblings. (judgment)
    least = min(pending, key=model.RANK.__getitem__) if pending else model.ACCEPTED
    if missing:
        least = model.ACCEPTED
    decided = ordered[statuses.index(least)] if least in statuses else ordered[0]
    return Aggregate(least, bool(delivered) or missing > 0, count, decided)


def parent_status(
    message_id: str, parts: Sequence[pb.MessageStatus], policy: Policy, *, full: bool = False
) -> pb.MessageStatus:
    """The parent's MessageStatus: the aggregate, the deciding part's latest report, the
    parts listed, counts summed, and (``full``) every part's history merged."""
    result = aggregate(parts, policy)
    decided = result.decided_by
    status = pb.MessageStatus(
        provider=decided.provider,
        account=decided.account,
        message_id=message_id,
        status=result.status,
        latest_report=decided.latest_report,
        report_count=sum(part.report_count for part in parts),
        conflict=any(part.conflict for part in parts),
        recipient=decided.recipient,
        client_ref=decided.client_ref,
        part_count=result.part_count,
        partial=result.partial,
    )
    status.first_seen_time.CopyFrom(
        min(parts, key=lambda p: model.micros(p.first_seen_time)).first_seen_time
    )
    status.update_time.CopyFrom(max(parts, key=lambda p: model.micros(p.update_time)).update_time)
    for part in sorted(parts, key=part_order):
        status.parts.add(
            message_id=part.message_id,
            part_index=part.latest_report.part_index,
            status=part.status,
            update_time=part.update_time,
        )
    if full:
        history = [report for part in parts for report in part.history]
        status.history.extend(sorted(history, key=model.history_key))
    return status

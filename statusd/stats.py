"""Delivery statistics (GetDeliveryStats): the rules, as pure functions; the stores aggregate.

What a message counts as (the same in both stores, and in the brute-force reference of the
tests):

* selected when its basis time (``submit_time``, or ``first_seen``) is in ``[start, end)``
  (with the submit basis, a message never registered has no submit time and is left out);
* **final** when its current entry is a final report (``final_time`` is set: a terminal status,
  UNKNOWN, or a report the provider marked final) or the report timeout (status NO_REPORT);
* **delivered** when its status is DELIVERED; **no report** when it is NO_REPORT;
* its **receipt latency** is ``final_time - submit_time`` (negative clock skew counts as 0),
  defined only when both are set.

Rates divide by the final count, so messages still in flight do not count against a provider.

**Latency percentiles** are computed from bucket counts, never from the rows: each store
counts, per group, the messages in each latency bucket (an SQL ``GROUP BY``, a MongoDB
``$group``), and :func:`percentile` reads the nearest-rank percentile off the counts. The
buckets are log-linear (HdrHistogram style): exact below 128 µs, then 64 equal buckets per
power of two, so a bucket is at most 1/64 of its lower bound wide and its midpoint, which
:func:`percentile` returns, is within **1/128 (0.8 %)** of every latency in it, in
particular of the exact nearest-rank percentile. Latencies are capped at 2^48 µs (8.9 years).
The store work is bounded by the number of (group, bucket) pairs, at most about
:data:`MAX_BUCKET` per group, whatever the number of messages.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import errors, model

#: The store column (SQLite) and document key (MongoDB) of each dimension, in response order.
DIMENSIONS: Final[dict[int, str]] = {
    status_pb.STATS_DIMENSION_PROVIDER: "provider",
    status_pb.STATS_DIMENSION_ACCOUNT: "account",
    status_pb.STATS_DIMENSION_COUNTRY: "country",
    status_pb.STATS_DIMENSION_STATUS: "status",
    status_pb.STATS_DIMENSION_ERROR_CODE: "error_code",
}
#: The time each basis selects on (column and document key alike).
BASES: Final[dict[int, str]] = {
    status_pb.STATS_TIME_BASIS_UNSPECIFIED: "submit_time",
    status_pb.STATS_TIME_BASIS_SUBMIT_TIME: "submit_time",
    status_pb.STATS_TIME_BASIS_FIRST_SEEN_TIME: "first_seen",
}
PERCENTILES: Final = (0.5, 0.9, 0.99)

#: Buckets per power of two (the precision: relative error at most 1 / (2 * SUB_BUCKETS)).
SUB_BUCKETS: Final = 64
_LINEAR_LIMIT: Final = 2 * SUB_BUCKETS  # below this, one bucket per microsecond
_SUB_BITS: Final = SUB_BUCKETS.bit_length() - 1
#: Latencies are clamped to ``[0, LATENCY_CAP]`` microseconds.
LATENCY_CAP: Final = (1 << 48) - 1
#: Every (lower bound, exclusive upper bound, shift) segment of the bucket function.
SEGMENTS: Final[tuple[tuple[int, int, int], ...]] = (
    (0, _LINEAR_LIMIT, 0),
    *((1 << e, 1 << (e + 1), e - _SUB_BITS) for e in range(_SUB_BITS + 1, 48)),
)


def clamp_latency(micros: int) -> int:
    return min(max(micros, 0), LATENCY_CAP)


def bucket_of(latency: int) -> int:
    """The bucket of a latency in microseconds (monotonic; see the module docstring)."""
    x = clamp_latency(latency)
    if x < _LINEAR_LIMIT:
        return x
    shift = x.bit_length() - 1 - _SUB_BITS
    return shift * SUB_BUCKETS + (x >> shift)


def bucket_offset(shift: int) -> int:
    """What the stores add to ``latency >> shift`` in the segment of that shift."""
    return shift * SUB_BUCKETS


#: The largest bucket number there is.
MAX_BUCKET: Final = bucket_of(LATENCY_CAP)


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """The smallest and largest latency (microseconds) in a bucket."""
    if bucket < _LINEAR_LIMIT:
        return bucket, bucket
    shift = bucket // SUB_BUCKETS - 1
    lower = (bucket - shift * SUB_BUCKETS) << shift
    return lower, lower + (1 << shift) - 1


def bucket_value(bucket: int) -> int:
    """The latency a bucket stands for: its midpoint (microseconds)."""
    lower, upper = bucket_bounds(bucket)
    return (lower + upper) // 2


def nearest_rank(count: int, q: float) -> int:
    """The 1-based rank of the ``q`` percentile among ``count`` values (nearest rank)."""
    return min(max(math.ceil(q * count - 1e-9), 1), count)


def percentile(buckets: Mapping[int, int], q: float) -> int:
    """The ``q`` percentile (nearest rank) of the latencies counted in ``buckets``, as the
    midpoint of the bucket that holds it; 0 when there are none."""
    total = sum(buckets.values())
    if total == 0:
        return 0
    rank = nearest_rank(total, q)
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass(frozen=True)
class StatsQuery:
    """A validated GetDeliveryStats request: times in microseconds, names of the columns."""

    start: int
    end: int
    basis: str = "submit_time"
    #: The grouping columns, in :data:`DIMENSIONS` order (ACCOUNT brings PROVIDER).
    group_by: tuple[str, ...] = ()
    provider: str = ""
    account: str | None = None


def stats_query(request: status_pb.GetDeliveryStatsRequest) -> StatsQuery:
    """Validates a request; :class:`~statusd.errors.InvalidArgument` names the bad field."""
    if not request.HasField("start_time") or not request.HasField("end_time"):
        raise errors.InvalidArgument("start_time and end_time are required")
    start, end = model.micros(request.start_time), model.micros(request.end_time)
    if end <= start:
        raise errors.InvalidArgument("end_time must be after start_time")
    if request.time_basis not in BASES:
        raise errors.InvalidArgument(f"time_basis: unknown value {request.time_basis}")
    wanted = list(request.group_by)
    for value in wanted:
        if value not in DIMENSIONS:
            raise errors.InvalidArgument(f"group_by: unknown or unspecified dimension {value}")
    if len(set(wanted)) != len(wanted):
        raise errors.InvalidArgument("group_by: each dimension at most once")
    if status_pb.STATS_DIMENSION_ACCOUNT in wanted:  # accounts are per provider
        wanted.append(status_pb.STATS_DIMENSION_PROVIDER)
    return StatsQuery(
        start=start,
        end=end,
        basis=BASES[request.time_basis],
        group_by=tuple(column for value, column in DIMENSIONS.items() if value in wanted),
        provider=request.provider,
        account=request.account or None,
    )


#: One row a store hands back: ``(group values..., bucket or None, messages, delivered,
#: no report, final)``; the bucket is None for the messages without a latency.
StatsRow = Sequence[Any]


@dataclass
class Tally:
    """The counts of one group, and its latency bucket counts."""

    messages: int = 0
    delivered: int = 0
    no_report: int = 0
    final: int = 0
    buckets: Counter[int] = field(default_factory=Counter)

    def add(self, bucket: int | None, counts: Sequence[int]) -> None:
        messages, delivered, no_report, final = (int(count) for count in counts)
        self.messages += messages
        self.delivered += delivered
        self.no_report += no_report
        self.final += final
        if bucket is not None:
            self.buckets[int(bucket)] += messages


def tally(rows: Iterable[StatsRow], width: int) -> dict[tuple[Any, ...], Tally]:
    """Store rows (``width`` group values each) added up per group."""
    groups: dict[tuple[Any, ...], Tally] = {}
    for row in rows:
        keys = tuple(row[:width])
        groups.setdefault(keys, Tally()).add(row[width], row[width + 1 : width + 5])
    return groups


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def group_message(
    columns: Sequence[str], keys: Sequence[Any], counts: Tally
) -> status_pb.DeliveryStatsGroup:
    """One group's statistics as the proto."""
    group = status_pb.DeliveryStatsGroup(
        message_count=counts.messages,
        delivered_count=counts.delivered,
        no_report_count=counts.no_report,
        final_count=counts.final,
        delivery_rate=rate(counts.delivered, counts.final),
        no_report_rate=rate(counts.no_report, counts.final),
        latency_count=sum(counts.buckets.values()),
        **dict(zip(columns, keys, strict=True)),
    )
    for q, target in zip(
        PERCENTILES,
        (group.receipt_latency_p50, group.receipt_latency_p90, group.receipt_latency_p99),
        strict=True,
    ):
        target.FromMicroseconds(percentile(counts.buckets, q))
    return group


def _order(keys: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if value is None else value for value in keys)


def stats_response(
    query: StatsQuery, rows: Iterable[StatsRow]
) -> status_pb.GetDeliveryStatsResponse:
    """The response from a store's rows: one entry per group (in group order) and the total."""
    groups = tally(rows, len(query.group_by))
    total = Tally()
    for counts in groups.values():
        total.messages += counts.messages
        total.delivered += counts.delivered
        total.no_report += counts.no_report
        total.final += counts.final
        total.buckets.update(counts.buckets)
    response = status_pb.GetDeliveryStatsResponse(total=group_message((), (), total))
    if query.group_by:
        response.groups.extend(
            group_message(query.group_by, keys, groups[keys]) for keys in sorted(groups, key=_order)
        )
    return response


def is_final(status: int, final_time: int | None) -> bool:
    """Whether a message counts as final (see the module docstring)."""
    return final_time is not None or status == pb.DELIVERY_STATUS_NO_REPORT

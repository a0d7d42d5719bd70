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
``$group``), and the nearest-rank percentile is read off the counts (SQLite in the same
statement, with window sums; for MongoDB :func:`summarize` here). The buckets are
log-linear (HdrHistogram style): exact below 128 µs, then 64 equal buckets per power of two,
so a bucket is at most 1/64 of its lower bound wide and its midpoint, which
:func:`percentile` returns, is within **1/128 (0.8 %)** of every latency in it, in
particular of the exact nearest-rank percentile. Latencies are capped at 2^48 µs (8.9 years).
What leaves the store is bounded by the number of (group, bucket) pairs, at most about
:data:`MAX_BUCKET` per group, whatever the number of messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import model

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
#: The receipt-latency percentiles, in percent (p50, p90, p99).
PERCENTILES: Final = (50, 90, 99)

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


def nearest_rank(count: int, percent: int) -> int:
    """The 1-based rank of the ``percent`` percentile among ``count`` values (nearest rank:
    ``ceil(count * percent / 100)``, at least 1), in integers as the SQL store computes it."""
    return max((count * percent + 99) // 100, 1)


def percentile_bucket(buckets: Mapping[int, int], percent: int) -> int | None:
    """The bucket that holds the ``percent`` percentile of the counted latencies (None when
    there are none)."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = nearest_rank(total, percent)
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket
    raise AssertionError("unreachable: the ranks add up to the total")


def percentile(buckets: Mapping[int, int], percent: int) -> int:
    """The ``percent`` percentile (nearest rank) of the latencies counted in ``buckets``, as
    the midpoint of the bucket that holds it; 0 when there are none."""
    bucket = percentile_bucket(buckets, percent)
    return 0 if bucket is None else bucket_value(bucket)


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
    # Imported here: statusd.errors imports the stores, whose statistics import this module.
    from statusd import errors

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


#: A cell of the aggregation: ``(group values..., bucket or None, messages, delivered,
#: no report, final)``; the bucket is None for the messages without a latency.
StatsRow = Sequence[Any]
#: One group as a store hands it back: ``(group values..., messages, delivered, no report,
#: final, latency count, p50 bucket, p90 bucket, p99 bucket)`` (buckets None without latencies).
GroupRow = Sequence[Any]


@dataclass
class StatsResult:
    """What a store hands back: the groups (one, the total, when not grouped) and the
    latency bucket counts of every selected message, for the total's percentiles."""

    groups: list[GroupRow]
    total_buckets: dict[int, int]


def summarize(cells: Iterable[StatsRow], width: int) -> StatsResult:
    """Cells (``width`` group values each) added up per group, percentiles picked from each
    group's bucket counts: what the SQL store computes in SQL, for a store that hands back
    cells (MongoDB)."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    buckets: dict[tuple[Any, ...], Counter[int]] = {}
    total: Counter[int] = Counter()
    for cell in cells:
        keys = tuple(cell[:width])
        bucket, messages = cell[width], int(cell[width + 1])
        found = counts.setdefault(keys, [0, 0, 0, 0])
        for index, value in enumerate(cell[width + 1 : width + 5]):
            found[index] += int(value)
        if bucket is not None:
            buckets.setdefault(keys, Counter())[int(bucket)] += messages
            total[int(bucket)] += messages
    groups: list[GroupRow] = []
    for keys, found in counts.items():
        histogram = buckets.get(keys, Counter())
        picked = [percentile_bucket(histogram, percent) for percent in PERCENTILES]
        groups.append((*keys, *found, sum(histogram.values()), *picked))
    return StatsResult(groups, dict(total))


def rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def group_message(
    columns: Sequence[str], row: GroupRow, total_buckets: Mapping[int, int] | None = None
) -> status_pb.DeliveryStatsGroup:
    """One group's statistics as the proto (for the total, its percentiles come from
    ``total_buckets``)."""
    width = len(columns)
    messages, delivered, no_report, final, latencies = (int(v or 0) for v in row[width:][:5])
    group = status_pb.DeliveryStatsGroup(
        message_count=messages,
        delivered_count=delivered,
        no_report_count=no_report,
        final_count=final,
        delivery_rate=rate(delivered, final),
        no_report_rate=rate(no_report, final),
        latency_count=latencies,
        **dict(zip(columns, row[:width], strict=True)),
    )
    if total_buckets is None:
        picked = [None if b is None else bucket_value(int(b)) for b in row[width + 5 :]]
    else:
        picked = [percentile(total_buckets, percent) for percent in PERCENTILES]
    targets = (group.receipt_latency_p50, group.receipt_latency_p90, group.receipt_latency_p99)
    for target, value in zip(targets, picked, strict=True):
        target.FromMicroseconds(value or 0)
    return group


def _order(row: GroupRow, width: int) -> tuple[Any, ...]:
    return tuple("" if value is None else value for value in row[:width])


def stats_response(query: StatsQuery, result: StatsResult) -> status_pb.GetDeliveryStatsResponse:
    """The response from what a store handed back: the groups (in group order), the total."""
    width = len(query.group_by)
    sums = [0] * 5
    for row in result.groups:
        for index, value in enumerate(row[width:][:5]):
            sums[index] += int(value or 0)
    total = group_message((), sums, result.total_buckets)
    response = status_pb.GetDeliveryStatsResponse(total=total)
    if width:
        ordered = sorted(result.groups, key=lambda row: _order(row, width))
        response.groups.extend(group_message(query.group_by, row) for row in ordered)
    return response


def is_final(status: int, final_time: int | None) -> bool:
    """Whether a message counts as final (see the module docstring)."""
    return final_time is not None or status == pb.DELIVERY_STATUS_NO_REPORT

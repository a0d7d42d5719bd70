"""GetDeliveryStats in SQLite: one statement over a covering index.

The window selects a range of :data:`STATS_INDEXES` (one per time basis), which hold every
column the query reads, so the query never touches the table rows (their report blobs make
them large): it reads the index range, computes each message's latency bucket with integer
arithmetic (:func:`bucket_sql`, the SQL form of :func:`statusd.stats.bucket_of`) and counts
per group and bucket; window sums over those cells pick each group's percentile buckets, so
statusd receives one row per group and one per latency bucket of the total, however many
messages the window holds. The rules are in :mod:`statusd.stats`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.stats import (
    LATENCY_CAP,
    PERCENTILES,
    SEGMENTS,
    StatsQuery,
    StatsResult,
    bucket_offset,
)

#: The covering indexes of the statistics, one per time basis (the sweeper does not use them).
STATS_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS messages_stats_submit ON messages"
    " (submit_time, provider, account, country, status, error_code, final_time)"
    " WHERE submit_time IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_stats_first_seen ON messages"
    " (first_seen, provider, account, country, status, error_code, submit_time, final_time)",
)
#: The index each basis reads. Named in the query: with a provider and account filter, the
#: planner would otherwise prefer the message-key index (no statistics tell it that a
#: provider holds a large share of the messages) and read every message of the provider.
BASIS_INDEXES: Final = {
    "submit_time": "messages_stats_submit",
    "first_seen": "messages_stats_first_seen",
}
#: The latency; the bucket expression clamps it only where it matters (below 0, above the cap).
_LATENCY: Final = "(final_time - submit_time)"


def _leaf(value: str, shift: int, first: bool, last: bool) -> str:
    if first:  # the exact segment: a latency below 0 (clock skew) counts as 0
        return f"max({value}, 0)"
    if last:
        value = f"min({value}, {LATENCY_CAP})"
    return f"({value} >> {shift}) + {bucket_offset(shift)}"


def bucket_sql(value: str, segments: Sequence[tuple[int, int, int]] = SEGMENTS) -> str:
    """A CASE expression for the bucket of ``value`` (an expression of a latency in
    microseconds): a binary search over the segments, about six comparisons for any
    latency, then a shift."""

    def search(low: int, high: int) -> str:
        if high - low == 1:
            return _leaf(value, segments[low][2], low == 0, low == len(segments) - 1)
        middle = (low + high) // 2
        split = segments[middle][0]
        below, above = search(low, middle), search(middle, high)
        return f"CASE WHEN {value} < {split} THEN {below} ELSE {above} END"

    return search(0, len(segments))


def _cells_sql(query: StatsQuery) -> tuple[str, list[Any]]:
    """The messages of the window counted per group and latency bucket."""
    where = [f"{query.basis} >= ?", f"{query.basis} < ?"]
    params: list[Any] = [query.start, query.end]
    if query.provider:
        where.append("provider = ?")
        params.append(query.provider)
    if query.account is not None:
        where.append("account = ?")
        params.append(query.account)
    keys = "".join(f"{column}, " for column in query.group_by)
    bucket = (
        "CASE WHEN final_time IS NULL OR submit_time IS NULL THEN NULL"
        f" ELSE {bucket_sql(_LATENCY)} END"
    )
    sql = (
        f"SELECT {keys}{bucket} AS bucket, count(*) AS n,"  # noqa: S608 - constant columns
        f" sum(status = {pb.DELIVERY_STATUS_DELIVERED}) AS delivered,"
        f" sum(status = {pb.DELIVERY_STATUS_NO_REPORT}) AS no_report,"
        f" sum(final_time IS NOT NULL OR status = {pb.DELIVERY_STATUS_NO_REPORT}) AS final"
        f" FROM messages INDEXED BY {BASIS_INDEXES[query.basis]}"
        f" WHERE {' AND '.join(where)} GROUP BY {keys}bucket"
    )
    return sql, params


def stats_sql(query: StatsQuery) -> tuple[str, list[Any]]:
    """One statement: the cells (materialized once), then per group its counts and the
    buckets of its percentiles (window sums over the cells in bucket order), and after them
    the latency bucket counts of the whole window (rows tagged 1), for the total."""
    cells, params = _cells_sql(query)
    keys = ", ".join(query.group_by)
    partition = f"PARTITION BY {keys} " if keys else ""
    timed = "CASE WHEN bucket IS NULL THEN 0 ELSE n END"
    picks = ", ".join(
        f"min(CASE WHEN bucket IS NOT NULL AND cum >= max((lat * {p} + 99) / 100, 1)"
        " THEN bucket END)"
        for p in PERCENTILES
    )
    nulls = "NULL, " * len(query.group_by)
    sql = (
        f"WITH cells AS MATERIALIZED ({cells}),"  # noqa: S608 - constant columns
        f" ranked AS (SELECT *,"
        f" sum({timed}) OVER ({partition}ORDER BY bucket ROWS UNBOUNDED PRECEDING) AS cum,"
        f" sum({timed}) OVER ({partition.rstrip()}) AS lat FROM cells)"
        f" SELECT 0, {keys + ', ' if keys else ''}sum(n), sum(delivered), sum(no_report),"
        f" sum(final), max(lat), {picks} FROM ranked"
        + (f" GROUP BY {keys}" if keys else "")
        + f" UNION ALL SELECT 1, {nulls}bucket, sum(n), NULL, NULL, NULL, NULL, NULL, NULL"  # noqa: S608
        " FROM cells WHERE bucket IS NOT NULL GROUP BY bucket"
    )
    return sql, params


def delivery_stats(connection: sqlite3.Connection, query: StatsQuery) -> StatsResult:
    """The groups and total latency buckets of ``query`` (see :func:`stats_sql`)."""
    sql, params = stats_sql(query)
    width = len(query.group_by)
    groups, total = [], {}
    for row in connection.execute(sql, params):
        if row[0] == 0:
            if row[width + 1] is not None:  # not the empty row of an empty, ungrouped window
                groups.append(row[1:])
        else:
            total[int(row[width + 1])] = int(row[width + 2])
    return StatsResult(groups, total)

"""GetDeliveryStats in SQLite: one aggregate query over a covering index.

The window selects a range of :data:`STATS_INDEXES` (one per time basis), which hold every
column the query reads, so the query never touches the table rows (their report blobs make
them large): it reads the index range, computes each message's latency bucket with integer
arithmetic (:func:`bucket_sql`, the SQL form of :func:`statusd.stats.bucket_of`) and counts
per group and bucket. The rules are in :mod:`statusd.stats`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.stats import LATENCY_CAP, SEGMENTS, StatsQuery, StatsRow, bucket_offset

#: The covering indexes of the statistics, one per time basis (the sweeper does not use them).
STATS_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS messages_submit_time ON messages"
    " (submit_time, provider, account, country, status, error_code, final_time)"
    " WHERE submit_time IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_first_seen ON messages"
    " (first_seen, provider, account, country, status, error_code, submit_time, final_time)",
)
#: The index each basis reads. Named in the query: with a provider and account filter, the
#: planner would otherwise prefer the message-key index (no statistics tell it that a
#: provider holds a large share of the messages) and read every message of the provider.
BASIS_INDEXES: Final = {"submit_time": "messages_submit_time", "first_seen": "messages_first_seen"}
_LATENCY: Final = f"min(max(final_time - submit_time, 0), {LATENCY_CAP})"


def bucket_sql(value: str, segments: Sequence[tuple[int, int, int]] = SEGMENTS) -> str:
    """A CASE expression for the bucket of ``value`` (an expression of a latency in
    microseconds, already clamped): a binary search over the segments, about six
    comparisons for any latency, then a shift."""
    if len(segments) == 1:
        _, _, shift = segments[0]
        return f"({value} >> {shift}) + {bucket_offset(shift)}" if shift else value
    middle = len(segments) // 2
    split = segments[middle][0]
    left, right = bucket_sql(value, segments[:middle]), bucket_sql(value, segments[middle:])
    return f"CASE WHEN {value} < {split} THEN {left} ELSE {right} END"


def stats_sql(query: StatsQuery) -> tuple[str, list[Any]]:
    """The aggregate query of ``query`` and its parameters (rows: :data:`StatsRow`)."""
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
        f"SELECT {keys}{bucket} AS bucket, count(*),"  # noqa: S608 - constant columns
        f" sum(status = {pb.DELIVERY_STATUS_DELIVERED}),"
        f" sum(status = {pb.DELIVERY_STATUS_NO_REPORT}),"
        f" sum(final_time IS NOT NULL OR status = {pb.DELIVERY_STATUS_NO_REPORT})"
        f" FROM messages INDEXED BY {BASIS_INDEXES[query.basis]}"
        f" WHERE {' AND '.join(where)} GROUP BY {keys}bucket"
    )
    return sql, params


def delivery_stats(connection: sqlite3.Connection, query: StatsQuery) -> list[StatsRow]:
    """The store rows of ``query``, for :func:`statusd.stats.stats_response`."""
    sql, params = stats_sql(query)
    return connection.execute(sql, params).fetchall()

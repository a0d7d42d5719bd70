"""GetDeliveryStats in SQLite: the messages of the window counted per statistics group and
latency bucket, then the groups the request asks for, with their percentiles.

Every message row carries two small integers made for this:

* ``stats_group``, the id of its ``(provider, account, country, status, error_code)`` in the
  ``stats_groups`` table (the writer sets it with every write, :class:`StatsGroups`);
* ``latency_bucket``, a virtual generated column: NULL while the message is not final, -1
  when it is final without a latency (no submit time), else its latency bucket
  (:func:`bucket_sql`, the SQL form of :func:`statusd.stats.bucket_of`).

A covering index per time basis (:data:`STATS_INDEXES`) holds ``(time, stats_group,
latency_bucket)``, so a window is one range of a narrow index and never the table's rows
(their report blobs make them large). The query runs in two steps on the reader's connection:

1. :func:`fill_cells_sql` reads the range and counts each ``(group, bucket)`` pair under
   one integer key in a temporary table (an upsert per message: SQLite has no hash
   aggregate, and its ``GROUP BY`` sorts every message, about three times slower on a
   million); the store cuts the window into parts (:func:`window_parts`) that several
   reader threads count at once (:func:`count_cells`);
2. :func:`summarize_cells` reads those cells back (at most groups times buckets, however many
   messages), adds them up into the requested groups and picks each group's percentile
   buckets, in one pass.

The rules are in :mod:`statusd.stats`.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.stats import (
    LATENCY_CAP,
    MAX_BUCKET,
    PERCENTILES,
    SEGMENTS,
    GroupRow,
    StatsQuery,
    StatsResult,
    bucket_offset,
    percentile_bucket,
)

#: The dimensions a statistics group is made of (``stats_groups`` columns, message columns).
GROUP_COLUMNS: Final = ("provider", "account", "country", "status", "error_code")
STATS_GROUPS_TABLE: Final = """CREATE TABLE IF NOT EXISTS stats_groups (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    country TEXT NOT NULL,
    status INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    UNIQUE (provider, account, country, status, error_code)
)"""
#: The covering indexes of the statistics, one per time basis (the sweeper does not use them).
STATS_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS messages_stats_by_submit ON messages"
    " (submit_time, stats_group, latency_bucket) WHERE submit_time IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_stats_by_first_seen ON messages"
    " (first_seen, stats_group, latency_bucket)",
)
#: The index each basis reads. Named in the query: with a provider filter, the planner
#: could otherwise prefer another index and read every message of the provider.
BASIS_INDEXES: Final = {
    "submit_time": "messages_stats_by_submit",
    "first_seen": "messages_stats_by_first_seen",
}
#: The latency; the bucket expression clamps it only where it matters (below 0, above the cap).
_LATENCY: Final = "(final_time - submit_time)"
#: A cell key is ``group << CELL_BITS | bucket + 2`` (0: not final, 1: final, no latency).
CELL_BITS: Final = 12
assert MAX_BUCKET + 2 < 1 << CELL_BITS
_SLOT_MASK: Final = (1 << CELL_BITS) - 1
_DELIVERED: Final = pb.DELIVERY_STATUS_DELIVERED
_NO_REPORT: Final = pb.DELIVERY_STATUS_NO_REPORT


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


#: The columns the statistics add to ``messages`` (the bucket is computed by SQLite itself,
#: so no write can leave it stale; an index stores its value).
STATS_COLUMNS: Final = (
    "stats_group INTEGER",
    "latency_bucket INTEGER GENERATED ALWAYS AS (CASE WHEN final_time IS NULL THEN NULL"
    f" WHEN submit_time IS NULL THEN -1 ELSE {bucket_sql(_LATENCY)} END) VIRTUAL",
)

GroupKey = tuple[str, str, str, int, str]


class StatsGroups:
    """The writer's dictionary from ``(provider, account, country, status, error_code)`` to
    its ``stats_groups`` id: a group is added the first time a message falls in it, and its
    id kept in memory after that (there are few groups: they do not grow with messages).
    :meth:`forget` after a rolled-back transaction, which may have added groups."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: dict[GroupKey, int] = {}
        self._limit = limit

    def id_of(self, connection: sqlite3.Connection, key: GroupKey) -> int:
        found = self._ids.get(key)
        if found is None:
            if len(self._ids) >= self._limit:
                self._ids.clear()
            where = " AND ".join(f"{column} = ?" for column in GROUP_COLUMNS)
            connection.execute(
                f"INSERT OR IGNORE INTO stats_groups ({', '.join(GROUP_COLUMNS)})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?)",
                key,
            )
            (found,) = connection.execute(
                f"SELECT id FROM stats_groups WHERE {where}",  # noqa: S608 - constant columns
                key,
            ).fetchone()
            self._ids[key] = found
        return found

    def forget(self) -> None:
        self._ids.clear()


def fill_groups(connection: sqlite3.Connection) -> None:
    """Sets ``stats_group`` of every stored message (a migration, or a bulk load)."""
    columns = ", ".join(GROUP_COLUMNS)
    matches = " AND ".join(f"g.{column} = messages.{column}" for column in GROUP_COLUMNS)
    connection.execute(
        f"INSERT OR IGNORE INTO stats_groups ({columns})"  # noqa: S608 - constant columns
        f" SELECT DISTINCT {columns} FROM messages"
    )
    connection.execute(
        f"UPDATE messages SET stats_group = (SELECT g.id FROM stats_groups g WHERE {matches})"  # noqa: S608
    )


CELLS_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS stats_cells (cell INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
)


def fill_cells_sql(query: StatsQuery) -> tuple[str, list[Any]]:
    """Counts the messages of the window per cell into ``temp.stats_cells``."""
    where = [f"{query.basis} >= ?", f"{query.basis} < ?"]
    params: list[Any] = [query.start, query.end]
    if query.provider or query.account is not None:
        groups = ["provider = ?"] if query.provider else []
        params += [query.provider] if query.provider else []
        if query.account is not None:
            groups.append("account = ?")
            params.append(query.account)
        chosen = " AND ".join(groups)
        where.append(f"stats_group IN (SELECT id FROM stats_groups WHERE {chosen})")  # noqa: S608
    sql = (
        "INSERT INTO temp.stats_cells (cell, n)"  # noqa: S608 - constant columns
        f" SELECT stats_group << {CELL_BITS} | (coalesce(latency_bucket, -2) + 2), 1"
        f" FROM messages INDEXED BY {BASIS_INDEXES[query.basis]}"
        f" WHERE {' AND '.join(where)}"
        # WHERE true: an upsert's SELECT must not end in a bare expression (SQLite's grammar)
        " AND true ON CONFLICT (cell) DO UPDATE SET n = n + 1"
    )
    return sql, params


def _group_values(
    connection: sqlite3.Connection, query: StatsQuery
) -> dict[int, tuple[tuple[Any, ...], int]]:
    """Each statistics group's values of the requested dimensions, and its status."""
    columns = "".join(f", {column}" for column in query.group_by)
    sql = f"SELECT id, status{columns} FROM stats_groups"  # noqa: S608 - constant columns
    return {row[0]: (tuple(row[2:]), row[1]) for row in connection.execute(sql)}


def summarize_cells(
    cells: Iterable[tuple[int, int]], groups: Mapping[int, tuple[tuple[Any, ...], int]]
) -> StatsResult:
    """The cells ``(key, messages)`` added up into the requested groups (``groups`` maps a
    statistics group to its requested values and status), each group's percentile buckets
    picked from its bucket counts: one pass, a few operations per cell."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    histograms: dict[tuple[Any, ...], dict[int, int]] = {}
    total: dict[int, int] = {}
    for cell, messages in cells:
        key, status = groups[cell >> CELL_BITS]
        slot = cell & _SLOT_MASK
        found = counts.get(key)
        if found is None:
            found = counts[key] = [0, 0, 0, 0]
            histograms[key] = {}
        found[0] += messages
        if status == _DELIVERED:
            found[1] += messages
        elif status == _NO_REPORT:
            found[2] += messages
        if slot or status == _NO_REPORT:
            found[3] += messages
        if slot >= 2:
            histogram = histograms[key]
            histogram[slot - 2] = histogram.get(slot - 2, 0) + messages
            total[slot - 2] = total.get(slot - 2, 0) + messages
    rows: list[GroupRow] = []
    for key, found in counts.items():
        histogram = histograms[key]
        picked = [percentile_bucket(histogram, percent) for percent in PERCENTILES]
        rows.append((*key, *found, sum(histogram.values()), *picked))
    return StatsResult(rows, total)


def window_parts(connection: sqlite3.Connection, query: StatsQuery, parts: int) -> list[StatsQuery]:
    """The window cut into up to ``parts`` consecutive windows of equal time between its
    first and last message (two index lookups), for as many readers to count at once."""
    index = BASIS_INDEXES[query.basis]
    first, last = connection.execute(
        f"SELECT min({query.basis}), max({query.basis}) FROM messages INDEXED BY {index}"  # noqa: S608
        f" WHERE {query.basis} >= ? AND {query.basis} < ?",
        (query.start, query.end),
    ).fetchone()
    if first is None or parts <= 1 or last - first < parts:
        return [query]
    step = (last + 1 - first) // parts
    cuts = [query.start, *(first + step * number for number in range(1, parts)), query.end]
    return [replace(query, start=low, end=high) for low, high in itertools.pairwise(cuts)]


def count_cells(connection: sqlite3.Connection, query: StatsQuery) -> list[tuple[int, int]]:
    """The ``(cell key, messages)`` pairs of the window, in key order (step 1). The
    connection is a reader's own: its temporary table is never shared."""
    connection.execute(CELLS_TABLE)
    connection.execute("DELETE FROM temp.stats_cells")
    try:
        connection.execute(*fill_cells_sql(query))
        return connection.execute("SELECT cell, n FROM temp.stats_cells").fetchall()
    finally:
        connection.execute("DELETE FROM temp.stats_cells")


def delivery_stats(
    connection: sqlite3.Connection, query: StatsQuery, cells: Iterable[tuple[int, int]]
) -> StatsResult:
    """The groups and total latency buckets of ``query`` from its counted ``cells`` (step 2;
    the cells of several parts of the window may follow each other)."""
    return summarize_cells(cells, _group_values(connection, query))

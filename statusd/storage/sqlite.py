"""The embedded store: one SQLite file, WAL mode, ``synchronous=FULL``.

One writer thread owns the write connection, so a batch is one ``BEGIN IMMEDIATE`` transaction
and the commit's fsync is the promise behind the gateway's 2xx. Readers never wait for the
writer (WAL): point reads (Get, BatchGet) run on the event loop's own connection, since an
indexed lookup costs less than a hop to a thread; scans (List, changes) run on a small thread
pool. A point read that finds the file busy falls back to the pool rather than block the loop.

Tables: ``messages`` (one row per message: the current report and counters; its rowid is the
first-seen order that List pages through), ``events`` (every distinct report; its rowid is
the change position that Watch resumes from, "0" before the first) and ``quarantine``; their
statements, the schema version and the migration of older files are
:mod:`statusd.storage.sqlite_schema`.

The WAL stays bounded: ``journal_size_limit`` truncates it to :data:`JOURNAL_SIZE_LIMIT`
after each checkpoint that resets it, and :meth:`SqliteStore.idle` (statusd calls it after a
quiet spell) checkpoints it completely and truncates it to zero bytes.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage.base import (
    Change,
    Committed,
    Due,
    InvalidPosition,
    MessageFilter,
    Page,
    PositionGone,
    Store,
    StoreUnavailable,
)
from statusd.storage.sqlite_schema import prepare
from statusd.storage.sqlite_sql import (
    CHANGES_SQL,
    DUE_SQL,
    MESSAGE_COLUMNS,
    commit_batch,
    message_status,
    read_message,
    row_id,
    where_clauses,
)
from statusd.storage.sqlite_stats import StatsGroups, count_cells, delivery_stats, window_parts

if TYPE_CHECKING:
    from statusd.stats import StatsQuery, StatsResult

_T = TypeVar("_T")
#: How long a read on the event loop's thread waits for a busy file before the pool takes over.
LOOP_BUSY_TIMEOUT_MS = 20
#: Larger BatchGets read on the pool, so that one request cannot hold the event loop up.
LOOP_BATCH_KEYS = 100
#: The WAL file is truncated to at most this size whenever a checkpoint resets it.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
#: How long the idle checkpoint waits for readers before it gives up until next time.
CHECKPOINT_BUSY_TIMEOUT_MS = 200


class SqliteStore(Store):
    """The embedded store (see the module docstring)."""

    name = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000, readers: int = 4) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._groups = StatsGroups()  # used by the writer thread only
        self._stats_parts = max(1, min(readers, os.cpu_count() or 1))
        self._local = threading.local()
        self._loop_connection: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=0
        )
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        connection.execute("PRAGMA foreign_keys = ON")
        with self._lock:
            self._connections.append(connection)
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    async def _run(self, pool: ThreadPoolExecutor, work: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, work)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from exc

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        def transaction() -> _T:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                self._groups.forget()  # it may hold groups the rollback took back
                raise
            connection.execute("COMMIT")
            return result

        return await self._run(self._writer_pool, transaction)

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return await self._run(self._reader_pool, lambda: work(self._connection()))

    async def _read_here(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """A short read on the event loop's thread; on a busy file, on the pool instead."""
        if self._loop_connection is None:
            self._loop_connection = self._connect()
            self._loop_connection.execute(f"PRAGMA busy_timeout = {LOOP_BUSY_TIMEOUT_MS}")
        try:
            return work(self._loop_connection)
        except sqlite3.OperationalError:
            return await self._read(work)  # locked or busy: let a pool thread wait for it
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from exc

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Creates the schema, or migrates an older file's; refuses a newer file's
        (:class:`~statusd.storage.base.SchemaTooNew`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._writer_pool, lambda: prepare(self._connection(), self.path))

    async def close(self) -> None:
        def close_all() -> None:
            with self._lock:
                for connection in self._connections:
                    connection.close()
                self._connections.clear()

        loop = asyncio.get_running_loop()
        # A read whose caller was cancelled (a Watch hub stopping) still runs on its thread:
        # let it finish first, as closing a connection another thread uses crashes sqlite3.
        await loop.run_in_executor(None, lambda: self._reader_pool.shutdown(wait=True))
        await loop.run_in_executor(self._writer_pool, close_all)
        self._writer_pool.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(lambda connection: connection.execute("SELECT 1 FROM meta").fetchall())

    async def probe_write(self) -> None:
        """A small durable write (a full disk or a read-only file fails it)."""

        def probe(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)",
                (str(time.time_ns()),),
            )

        await self._write(probe)

    async def idle(self) -> None:
        """Checkpoints the WAL into the database and truncates it (readers that hold an old
        snapshot make it give up after a moment; the next quiet spell tries again)."""

        def checkpoint() -> None:
            connection = self._connection()
            connection.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_TIMEOUT_MS}")
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

        await self._run(self._writer_pool, checkpoint)

    # -- writes --------------------------------------------------------------------------

    async def commit_batch(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> Committed:
        return await self._write(
            lambda connection: commit_batch(connection, reports, quarantined, self._groups)
        )

    async def purge(self, before_micros: int) -> int:
        def purge(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("DELETE FROM messages WHERE updated < ?", (before_micros,))
            connection.execute("DELETE FROM quarantine WHERE stored < ?", (before_micros,))
            return cursor.rowcount

        return await self._write(purge)

    async def delivery_stats(self, query: StatsQuery) -> StatsResult:
        """Counted by as many readers at once as there are processors (each a part of the
        window, :mod:`statusd.storage.sqlite_stats`), then added up by one."""
        parts = await self._read(
            lambda connection: window_parts(connection, query, self._stats_parts)
        )
        counted = await asyncio.gather(
            *(self._read(functools.partial(count_cells, query=part)) for part in parts)
        )
        cells = itertools.chain.from_iterable(counted)
        return await self._read(lambda connection: delivery_stats(connection, query, cells))

    async def due_timeouts(self, now_micros: int, limit: int) -> list[Due]:
        def due(connection: sqlite3.Connection) -> list[Due]:
            rows = connection.execute(DUE_SQL, (now_micros, limit)).fetchall()
            return [
                Due((provider, account, message), at) for provider, account, message, at in rows
            ]

        return await self._read(due)

    async def release(self, ids: Sequence[str]) -> int:
        numbers = [(int(item),) for item in ids if item.isdigit()]

        def release(connection: sqlite3.Connection) -> int:
            before = connection.total_changes
            connection.executemany("DELETE FROM quarantine WHERE id = ?", numbers)
            return connection.total_changes - before

        return await self._write(release)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: pb.MessageKey, *, full: bool = False) -> pb.MessageStatus | None:
        return await self._read_here(lambda connection: read_message(connection, key, full=full))

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool = False
    ) -> list[pb.MessageStatus]:
        def batch_get(connection: sqlite3.Connection) -> list[pb.MessageStatus]:
            found = (read_message(connection, key, full=full) for key in keys)
            return [status for status in found if status is not None]

        # A small batch is a few lookups; a large one could hold the loop up: use the pool.
        small = len(keys) <= LOOP_BATCH_KEYS
        return await (self._read_here(batch_get) if small else self._read(batch_get))

    async def list_messages(
        self, query: MessageFilter, *, after: str | None, limit: int, full: bool = False
    ) -> Page:
        where, params = where_clauses(query)
        if after is not None:
            where.append("id > ?")
            params.append(row_id(after))
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages"  # noqa: S608 - clauses are constants
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id LIMIT ?"
        )
        params.append(limit + 1)

        def page(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(sql, params).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            items = [message_status(connection, row, full=full) for row in rows]
            cursor = str(rows[-1][0]) if more and rows else None
            return Page(items=items, cursor=cursor)

        return await self._read(page)

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        start = row_id(after) if after else 0

        def changes(connection: sqlite3.Connection) -> list[Change]:
            found: list[Change] = []
            position = start
            while len(found) < limit:  # scan on past events the filter drops
                rows = connection.execute(CHANGES_SQL, (position, limit)).fetchall()
                for row in rows:
                    status = message_status(connection, row[2:], full=False)
                    if query.matches(status):
                        report = pb.DeliveryReport.FromString(row[1])
                        found.append(Change(str(row[0]), report, status))
                if len(rows) < limit:
                    break
                position = rows[-1][0]
            return found[:limit]

        return await self._read(changes)

    async def last_position(self) -> str | None:
        def last(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT max(id) FROM events").fetchone()
            return "0" if row[0] is None else str(row[0])

        return await self._read(last)

    async def check_position(self, position: str) -> None:
        number = row_id(position)

        def check(connection: sqlite3.Connection) -> None:
            handed_out = connection.execute(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'events'"
            ).fetchone()[0]
            if number > handed_out:
                raise InvalidPosition(f"position {number} was never reached (newest {handed_out})")
            oldest = connection.execute("SELECT min(id) FROM events").fetchone()[0]
            kept_from = handed_out + 1 if oldest is None else oldest
            if number < kept_from - 1:
                raise PositionGone(
                    f"changes after position {number} were purged (the oldest kept is "
                    f"{kept_from}); start a new stream and read current state with List"
                )

        await self._read(check)

    async def count_quarantined(self) -> int:
        def count(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM quarantine").fetchone()[0])

        return await self._read(count)

    async def quarantined(self, *, after: str | None, limit: int) -> list[pb.QuarantinedItem]:
        try:
            start = row_id(after) if after else 0
        except InvalidPosition:  # like MongoDB's: a cursor it cannot read starts over
            start = 0

        def items(connection: sqlite3.Connection) -> list[pb.QuarantinedItem]:
            rows = connection.execute(
                "SELECT id, item FROM quarantine WHERE id > ? ORDER BY id LIMIT ?",
                (start, limit),
            ).fetchall()
            found = []
            for item_id, blob in rows:
                item = pb.QuarantinedItem.FromString(blob)
                item.id = str(item_id)
                found.append(item)
            return found

        return await self._read(items)

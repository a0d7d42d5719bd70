"""The embedded store: one SQLite file, WAL mode, ``synchronous=FULL``.

One writer thread owns the write connection, so a batch is one ``BEGIN IMMEDIATE`` transaction
and the commit's fsync is the promise behind the gateway's 2xx. Readers use their own
connections on a small thread pool and never wait for the writer (WAL).

Tables: ``messages`` (one row per message: the current report and counters; its rowid is the
first-seen order that List pages through), ``events`` (every distinct report; its rowid is
the change position that Watch resumes from) and ``quarantine``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    Change,
    InvalidPosition,
    MessageFilter,
    Outcome,
    Page,
    Store,
    StoreUnavailable,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    order_key TEXT NOT NULL,
    latest BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    report_count INTEGER NOT NULL,
    terminal_mask INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    client_ref TEXT NOT NULL,
    parent_message_id TEXT NOT NULL,
    UNIQUE (provider, account, message_id)
);
CREATE INDEX IF NOT EXISTS messages_updated ON messages (updated);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient, id) WHERE recipient != '';
CREATE INDEX IF NOT EXISTS messages_client_ref ON messages (client_ref, id) WHERE client_ref != '';
CREATE INDEX IF NOT EXISTS messages_parent ON messages (provider, account, parent_message_id, id)
    WHERE parent_message_id != '';
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    report BLOB NOT NULL,
    UNIQUE (message, event_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    item BLOB NOT NULL,
    stored INTEGER NOT NULL
);
"""

_MESSAGE_COLUMNS = (
    "id, provider, account, message_id, status, latest, first_seen, updated, "
    "report_count, terminal_mask, recipient, client_ref, parent_message_id"
)

_CHANGES_SQL = (
    "SELECT e.id, e.report, "  # noqa: S608 - constant columns
    + ", ".join("m." + column.strip() for column in _MESSAGE_COLUMNS.split(","))
    + " FROM events e JOIN messages m ON m.id = e.message WHERE e.id > ? ORDER BY e.id LIMIT ?"
)

_T = TypeVar("_T")


def now_micros() -> int:
    return time.time_ns() // 1_000


class SqliteStore(Store):
    """The embedded store (see the module docstring)."""

    name = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000, readers: int = 4) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
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
                raise
            connection.execute("COMMIT")
            return result

        return await self._run(self._writer_pool, transaction)

    async def _read(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return await self._run(self._reader_pool, lambda: work(self._connection()))

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def create(connection: sqlite3.Connection) -> None:
            connection.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

        await self._run(self._writer_pool, lambda: create(self._connection()))

    async def close(self) -> None:
        def close_all() -> None:
            with self._lock:
                for connection in self._connections:
                    connection.close()
                self._connections.clear()

        await asyncio.get_running_loop().run_in_executor(self._writer_pool, close_all)
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)

    async def ping(self) -> None:
        await self._read(lambda connection: connection.execute("SELECT 1 FROM meta").fetchall())

    # -- writes --------------------------------------------------------------------------

    async def commit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        return await self._write(lambda connection: _commit(connection, reports, quarantined))

    async def purge(self, before_micros: int) -> int:
        def purge(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("DELETE FROM messages WHERE updated < ?", (before_micros,))
            connection.execute("DELETE FROM quarantine WHERE stored < ?", (before_micros,))
            return cursor.rowcount

        return await self._write(purge)

    async def release(self, ids: Sequence[str]) -> int:
        numbers = [(int(item),) for item in ids if item.isdigit()]

        def release(connection: sqlite3.Connection) -> int:
            before = connection.total_changes
            connection.executemany("DELETE FROM quarantine WHERE id = ?", numbers)
            return connection.total_changes - before

        return await self._write(release)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: pb.MessageKey, *, full: bool = False) -> pb.MessageStatus | None:
        def get(connection: sqlite3.Connection) -> pb.MessageStatus | None:
            row = connection.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608 - constant columns
                "WHERE provider = ? AND account = ? AND message_id = ?",
                (key.provider, key.account, key.message_id),
            ).fetchone()
            return None if row is None else _status(connection, row, full=full)

        return await self._read(get)

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool = False
    ) -> list[pb.MessageStatus]:
        def batch_get(connection: sqlite3.Connection) -> list[pb.MessageStatus]:
            found = []
            for key in keys:
                row = connection.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages "  # noqa: S608 - constant columns
                    "WHERE provider = ? AND account = ? AND message_id = ?",
                    (key.provider, key.account, key.message_id),
                ).fetchone()
                if row is not None:
                    found.append(_status(connection, row, full=full))
            return found

        return await self._read(batch_get)

    async def list_messages(
        self, query: MessageFilter, *, after: str | None, limit: int, full: bool = False
    ) -> Page:
        where, params = _where(query)
        if after is not None:
            where.append("id > ?")
            params.append(_row_id(after))
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608 - clauses are constants
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id LIMIT ?"
        )
        params.append(limit + 1)

        def page(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(sql, params).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            items = [_status(connection, row, full=full) for row in rows]
            cursor = str(rows[-1][0]) if more and rows else None
            return Page(items=items, cursor=cursor)

        return await self._read(page)

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        start = _row_id(after) if after else 0

        def changes(connection: sqlite3.Connection) -> list[Change]:
            found: list[Change] = []
            position = start
            while len(found) < limit:  # scan on past events the filter drops
                rows = connection.execute(_CHANGES_SQL, (position, limit)).fetchall()
                for row in rows:
                    status = _status(connection, row[2:], full=False)
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
            return None if row[0] is None else str(row[0])

        return await self._read(last)

    async def count_quarantined(self) -> int:
        def count(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM quarantine").fetchone()[0])

        return await self._read(count)

    async def quarantined(self, *, after: str | None, limit: int) -> list[pb.QuarantinedItem]:
        start = int(after) if after and after.isdigit() else 0

        def items(connection: sqlite3.Connection) -> list[pb.QuarantinedItem]:
            rows = connection.execute(
                "SELECT id, item FROM quarantine WHERE id > ? ORDER BY id LIMIT ?",
                (start, limit),
            ).fetchall()
            found = []
            for row_id, blob in rows:
                item = pb.QuarantinedItem.FromString(blob)
                item.id = str(row_id)
                found.append(item)
            return found

        return await self._read(items)


def _commit(
    connection: sqlite3.Connection,
    reports: Sequence[pb.DeliveryReport],
    quarantined: Sequence[pb.QuarantinedItem],
) -> list[Outcome]:
    """Applies one batch inside the open write transaction (the writer is the only one)."""
    now = now_micros()
    outcomes: list[Outcome] = []
    execute = connection.execute
    for report in reports:
        key = model.order_key(report)
        blob = report.SerializeToString()
        bit = model.terminal_bit(report.status)
        row = execute(
            "SELECT id, order_key FROM messages WHERE provider = ? AND account = ? "
            "AND message_id = ?",
            (report.provider, report.account, report.message_id),
        ).fetchone()
        if row is None:
            message = execute(
                "INSERT INTO messages (provider, account, message_id, status, order_key, latest,"
                " first_seen, updated, report_count, terminal_mask, recipient, client_ref,"
                " parent_message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (
                    report.provider,
                    report.account,
                    report.message_id,
                    report.status,
                    key,
                    blob,
                    now,
                    now,
                    bit,
                    report.recipient,
                    report.client_ref,
                    report.parent_message_id,
                ),
            ).lastrowid
            _insert_event(connection, message, report, blob)
            outcomes.append(STORED)
            continue
        message, current = row
        if not _insert_event(connection, message, report, blob):
            outcomes.append(DUPLICATE)
            continue
        if key > current:
            execute(
                "UPDATE messages SET status = ?, order_key = ?, latest = ?, updated = ?,"
                " report_count = report_count + 1, terminal_mask = terminal_mask | ?,"
                " recipient = CASE WHEN recipient = '' THEN ? ELSE recipient END,"
                " client_ref = CASE WHEN client_ref = '' THEN ? ELSE client_ref END,"
                " parent_message_id = CASE WHEN parent_message_id = '' THEN ?"
                " ELSE parent_message_id END WHERE id = ?",
                (
                    report.status,
                    key,
                    blob,
                    now,
                    bit,
                    report.recipient,
                    report.client_ref,
                    report.parent_message_id,
                    message,
                ),
            )
            outcomes.append(STORED)
        else:
            execute(
                "UPDATE messages SET updated = ?, report_count = report_count + 1,"
                " terminal_mask = terminal_mask | ?,"
                " recipient = CASE WHEN recipient = '' THEN ? ELSE recipient END,"
                " client_ref = CASE WHEN client_ref = '' THEN ? ELSE client_ref END,"
                " parent_message_id = CASE WHEN parent_message_id = '' THEN ?"
                " ELSE parent_message_id END WHERE id = ?",
                (now, bit, report.recipient, report.client_ref, report.parent_message_id, message),
            )
            outcomes.append(STALE)
    if quarantined:
        connection.executemany(
            "INSERT INTO quarantine (provider, account, item, stored) VALUES (?, ?, ?, ?)",
            [(item.provider, item.account, item.SerializeToString(), now) for item in quarantined],
        )
    return outcomes


def _insert_event(
    connection: sqlite3.Connection, message: Any, report: pb.DeliveryReport, blob: bytes
) -> bool:
    """Adds a report to the history; False when its dedupe key is already there."""
    cursor = connection.execute(
        "INSERT OR IGNORE INTO events (message, event_id, event_time, sequence, report)"
        " VALUES (?, ?, ?, ?, ?)",
        (message, report.event_id, model.effective_time(report), report.sequence, blob),
    )
    return cursor.rowcount == 1


def _row_id(position: str) -> int:
    """A cursor or position of this store: a row id."""
    if not position.isascii() or not position.isdigit():
        raise InvalidPosition(f"not a position of the sqlite store: {position[:40]!r}")
    return int(position)


def _where(query: MessageFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.provider:
        where.append("provider = ?")
        params.append(query.provider)
    if query.account is not None:
        where.append("account = ?")
        params.append(query.account)
    if query.statuses:
        where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(sorted(query.statuses))
    if query.recipient:
        where.append("recipient = ?")
        params.append(query.recipient)
    if query.client_ref:
        where.append("client_ref = ?")
        params.append(query.client_ref)
    if query.update_time_start is not None:
        where.append("updated >= ?")
        params.append(query.update_time_start)
    if query.update_time_end is not None:
        where.append("updated < ?")
        params.append(query.update_time_end)
    if query.parent_message_id:
        where.append("parent_message_id = ?")
        params.append(query.parent_message_id)
    return where, params


def _status(connection: sqlite3.Connection, row: Sequence[Any], *, full: bool) -> pb.MessageStatus:
    (
        message,
        provider,
        account,
        message_id,
        status,
        latest,
        first_seen,
        updated,
        report_count,
        terminal_mask,
        recipient,
        client_ref,
        parent_message_id,
    ) = row
    result = pb.MessageStatus(
        provider=provider,
        account=account,
        message_id=message_id,
        status=status,
        latest_report=pb.DeliveryReport.FromString(latest),
        report_count=report_count,
        conflict=model.has_conflict(terminal_mask),
        recipient=recipient,
        client_ref=client_ref,
        parent_message_id=parent_message_id,
    )
    result.first_seen_time.FromMicroseconds(first_seen)
    result.update_time.FromMicroseconds(updated)
    if full:
        rows = connection.execute(
            "SELECT report FROM events WHERE message = ? ORDER BY event_time, sequence, event_id",
            (message,),
        ).fetchall()
        result.history.extend(pb.DeliveryReport.FromString(blob) for (blob,) in rows)
    return result

"""The SQL of the SQLite store: the schema, the batch commit, and rows as protos.

Everything here runs on a connection the store hands in (inside its write transaction for
:func:`commit_batch`); :mod:`statusd.storage.sqlite` owns the connections and threads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    InvalidPosition,
    MessageFilter,
    Outcome,
)

SCHEMA_VERSION = 1

SCHEMA = """
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

MESSAGE_COLUMNS = (
    "id, provider, account, message_id, status, latest, first_seen, updated, "
    "report_count, terminal_mask, recipient, client_ref, parent_message_id"
)

CHANGES_SQL = (
    "SELECT e.id, e.report, "  # noqa: S608 - constant columns
    + ", ".join("m." + column.strip() for column in MESSAGE_COLUMNS.split(","))
    + " FROM events e JOIN messages m ON m.id = e.message WHERE e.id > ? ORDER BY e.id LIMIT ?"
)


def now_micros() -> int:
    return time.time_ns() // 1_000


def commit_batch(
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
            insert_event(connection, message, report, blob)
            outcomes.append(STORED)
            continue
        message, current = row
        if not insert_event(connection, message, report, blob):
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


def insert_event(
    connection: sqlite3.Connection, message: Any, report: pb.DeliveryReport, blob: bytes
) -> bool:
    """Adds a report to the history; False when its dedupe key is already there."""
    cursor = connection.execute(
        "INSERT OR IGNORE INTO events (message, event_id, event_time, sequence, report)"
        " VALUES (?, ?, ?, ?, ?)",
        (message, report.event_id, model.effective_time(report), report.sequence, blob),
    )
    return cursor.rowcount == 1


def row_id(position: str) -> int:
    """A cursor or position of this store: a row id."""
    if not position.isascii() or not position.isdigit():
        raise InvalidPosition(f"not a position of the sqlite store: {position[:40]!r}")
    return int(position)


def where_clauses(query: MessageFilter) -> tuple[list[str], list[Any]]:
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


def message_status(
    connection: sqlite3.Connection, row: Sequence[Any], *, full: bool
) -> pb.MessageStatus:
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

"""The SQL of the SQLite store: the batch commit, filters, and rows as protos.

The statements name the status field table's columns (:mod:`statusd.status_fields`); the
schema is :mod:`statusd.storage.sqlite_schema`. Everything here runs on a connection the store
hands in (inside its write transaction for :func:`commit_batch`); :mod:`statusd.storage.sqlite`
owns the connections and threads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    Committed,
    InvalidPosition,
    MessageFilter,
    Outcome,
    Receipt,
    set_times,
)
from statusd.storage.sqlite_stats import GroupKey, StatsGroups

#: The columns of the status field table, in table order.
FIELD_COLUMNS = ", ".join(field.column for field in FIELDS)
_FIXED_COLUMNS = (
    "id, provider, account, message_id, status, latest, first_seen, updated, "
    "report_count, terminal_mask, submit_time, registered_at, report_deadline, country, "
    "final_time"
)
_FIXED_COUNT = len(_FIXED_COLUMNS.split(","))
#: What a read selects of a message row; :func:`message_status` turns it into the proto.
MESSAGE_COLUMNS = f"{_FIXED_COLUMNS}, {FIELD_COLUMNS}"

GET_SQL = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages "  # noqa: S608 - constant columns
    "WHERE provider = ? AND account = ? AND message_id = ?"
)
CHANGES_SQL = (
    "SELECT e.id, e.report, "  # noqa: S608 - constant columns
    + ", ".join("m." + column.strip() for column in MESSAGE_COLUMNS.split(","))
    + " FROM events e JOIN messages m ON m.id = e.message WHERE e.id > ? ORDER BY e.id LIMIT ?"
)
INSERT_SQL = (
    "INSERT INTO messages (provider, account, message_id, status, order_key, latest,"  # noqa: S608
    " final_time, error_code, first_seen, updated, report_count, terminal_mask, country,"
    f" submit_time, registered_at, report_deadline, stats_group, {FIELD_COLUMNS})"
    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?{', ?' * len(FIELDS)})"
)
#: A new distinct entry: count it (when it is a report), and fill the status fields (and the
#: country, with the recipient) still empty; the statistics group follows (see
#: :func:`group_key`, :func:`country_after`). SET expressions read the row as it was before.
_COUNT_AND_FILL = (
    "updated = ?, report_count = report_count + ?, terminal_mask = terminal_mask | ?, "
    "country = CASE WHEN recipient = '' THEN ? ELSE country END, stats_group = ?, "
    + ", ".join(
        f"{field.column} = CASE WHEN {field.column} = '' THEN ? ELSE {field.column} END"
        for field in FIELDS
    )
)
CURRENT_SQL = (
    "UPDATE messages SET status = ?, order_key = ?, latest = ?, final_time = ?,"  # noqa: S608
    f" error_code = ?, {_COUNT_AND_FILL} WHERE id = ?"
)
#: Fills the registration columns of a message stored before it was registered (a report
#: came first); the registration entry's fixed dedupe key makes it happen once.
REGISTER_SQL = (
    "UPDATE messages SET submit_time = ?, registered_at = ?, report_deadline = ?"
    " WHERE id = ? AND registered_at IS NULL"
)
#: The messages whose report timeout has passed, through the sweeper's partial index.
DUE_SQL = (
    "SELECT provider, account, message_id, report_deadline FROM messages"
    " WHERE report_deadline IS NOT NULL AND order_key < '1' AND report_deadline <= ?"
    " ORDER BY report_deadline LIMIT ?"
)
STALE_SQL = f"UPDATE messages SET {_COUNT_AND_FILL} WHERE id = ?"  # noqa: S608
#: What a commit reads of a message before it applies an entry (:func:`apply_report`).
ROW_SQL = (
    "SELECT id, order_key, report_deadline, status, error_code, country, recipient,"
    " submit_time, final_time FROM messages WHERE provider = ? AND account = ? AND message_id = ?"
)


def now_micros() -> int:
    return time.time_ns() // 1_000


def commit_batch(
    connection: sqlite3.Connection,
    reports: Sequence[pb.DeliveryReport],
    quarantined: Sequence[pb.QuarantinedItem],
    groups: StatsGroups,
) -> Committed:
    """Applies one batch inside the open write transaction (the writer is the only one)."""
    now = now_micros()
    outcomes: list[Outcome] = []
    receipts: dict[model.MessageKeyTuple, Receipt] = {}  # the last one of each message
    for report in reports:
        outcome, receipt = apply_report(connection, report, now, groups)
        outcomes.append(outcome)
        if receipt is not None:
            receipts[model.message_key(report)] = receipt
    if quarantined:
        connection.executemany(
            "INSERT INTO quarantine (provider, account, item, stored) VALUES (?, ?, ?, ?)",
            [(item.provider, item.account, item.SerializeToString(), now) for item in quarantined],
        )
    return Committed(outcomes, list(receipts.values()))


def country_after(row: Sequence[Any], country: str) -> str:
    """The country a write leaves on a stored message (:data:`ROW_SQL`): the stored one once
    the message has a recipient, else the entry's (what ``_COUNT_AND_FILL`` does)."""
    return str(row[5]) if row[6] else country


def group_key(
    report: pb.DeliveryReport, country: str, row: Sequence[Any] | None, current: bool
) -> GroupKey:
    """The statistics group of a message after ``report`` is written to its ``row``
    (:data:`ROW_SQL`, None for a new message), whose country is then ``country``: the
    report's status and error code when it becomes current, else the row's."""
    if row is None or current:
        return (report.provider, report.account, country, report.status, report.error.code)
    return (report.provider, report.account, country, row[3], row[4])


def apply_report(
    connection: sqlite3.Connection, report: pb.DeliveryReport, now: int, groups: StatsGroups
) -> tuple[Outcome, Receipt | None]:
    """Adds one entry to its message's history and, when it is newer, makes it current;
    returns its outcome and the message's receipt when it has one now (:func:`receipt`).

    A timeout entry applies only while the message still awaits a report and its deadline
    is the one the entry was made for; otherwise nothing is written (DUPLICATE)."""
    key = model.order_key(report)
    blob = report.SerializeToString()
    bit = model.terminal_bit(report.status)
    fields = [getattr(report, field.name) for field in FIELDS]
    counted = 1 if model.is_report(report) else 0
    country = model.country_of(report.recipient)
    registration = registration_values(report, now)
    row = connection.execute(
        ROW_SQL, (report.provider, report.account, report.message_id)
    ).fetchone()
    if model.is_timeout(report) and not timeout_applies(row, report):
        return DUPLICATE, None
    final_time, error_code = model.final_time(report), report.error.code
    if row is None:
        group = groups.id_of(connection, group_key(report, country, None, True))
        message = connection.execute(
            INSERT_SQL,
            (
                *(report.provider, report.account, report.message_id, report.status),
                *(key, blob, final_time, error_code, now, now, counted, bit, country),
                *(registration or (None, None, None)),
                group,
                *fields,
            ),
        ).lastrowid
        insert_event(connection, message, report, blob)
        return STORED, None  # a new message has no final report and a registration at once
    message, current = row[0], row[1]
    if not insert_event(connection, message, report, blob):
        return DUPLICATE, None
    if registration is not None:
        connection.execute(REGISTER_SQL, (*registration, message))
    country_now = country_after(row, country)
    group = groups.id_of(connection, group_key(report, country_now, row, key > current))
    counting = (now, counted, bit, country, group, *fields, message)
    if key > current:
        connection.execute(
            CURRENT_SQL, (report.status, key, blob, final_time, error_code, *counting)
        )
        return STORED, receipt(row, report, final_time, country_now)
    connection.execute(STALE_SQL, counting)
    return STALE, receipt(row, report, None, country_now)


def receipt(
    row: Sequence[Any], report: pb.DeliveryReport, became_final: int | None, country: str
) -> Receipt | None:
    """The receipt of a message once an entry applied to its row (:data:`ROW_SQL`, as it
    was before): when a final report became current (``became_final``, its final time) or
    a registration came after the final report, and the message is registered. ``country``
    is the one the update left (:func:`country_after`)."""
    submit, final = row[7], became_final
    if model.is_registration(report):
        final = row[8]
        if submit is None:
            submit = model.registration_micros(report.registration)[0]
    if submit is None or final is None:
        return None
    return Receipt(report.provider, country, submit, final)


def registration_values(report: pb.DeliveryReport, now: int) -> tuple[int, int, int] | None:
    """``(submit_time, registered_at, report_deadline)`` of a registration entry, else None."""
    if not model.is_registration(report):
        return None
    submit, deadline = model.registration_micros(report.registration)
    return submit, now, deadline


def timeout_applies(row: Sequence[Any] | None, report: pb.DeliveryReport) -> bool:
    """Whether a timeout entry applies to the message row ``(id, order_key, deadline)``."""
    return (
        row is not None
        and model.awaiting_report(row[1], row[2])
        and row[2] == model.micros(report.event_time)
    )


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
    # At most 18 digits: every such number fits SQLite's 64-bit INTEGER.
    if not position.isascii() or not position.isdigit() or len(position) > 18:
        raise InvalidPosition(f"not a position of the sqlite store: {position[:40]!r}")
    return int(position)


def where_clauses(query: MessageFilter) -> tuple[list[str], list[Any]]:
    """The SQL conditions of a List or Watch filter and their parameters."""
    conditions: list[tuple[str, Any]] = []
    if query.provider:
        conditions.append(("provider = ?", query.provider))
    if query.account is not None:
        conditions.append(("account = ?", query.account))
    conditions += [(f"{f.column} = ?", query.value(f.name)) for f in FIELDS if query.value(f.name)]
    if query.update_time_start is not None:
        conditions.append(("updated >= ?", query.update_time_start))
    if query.update_time_end is not None:
        conditions.append(("updated < ?", query.update_time_end))
    where = [clause for clause, _ in conditions]
    params = [value for _, value in conditions]
    if query.awaiting_report:  # the terms of the sweeper's partial index
        where += ["report_deadline IS NOT NULL", "order_key < '1'"]
    if query.statuses:
        where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(sorted(query.statuses))
    return where, params


def read_message(
    connection: sqlite3.Connection, key: pb.MessageKey, *, full: bool
) -> pb.MessageStatus | None:
    """One message by its key, or None."""
    row = connection.execute(GET_SQL, (key.provider, key.account, key.message_id)).fetchone()
    return None if row is None else message_status(connection, row, full=full)


def message_status(
    connection: sqlite3.Connection, row: Sequence[Any], *, full: bool
) -> pb.MessageStatus:
    """A row of :data:`MESSAGE_COLUMNS` as the proto (with history when ``full``)."""
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
        submit_time,
        registered_at,
        report_deadline,
        country,
        final_time,
    ) = row[:_FIXED_COUNT]
    result = pb.MessageStatus(
        provider=provider,
        account=account,
        message_id=message_id,
        status=status,
        latest_report=pb.DeliveryReport.FromString(latest),
        report_count=report_count,
        conflict=model.has_conflict(terminal_mask),
        country=country,
        **{field.name: value for field, value in zip(FIELDS, row[_FIXED_COUNT:], strict=True)},
    )
    result.first_seen_time.FromMicroseconds(first_seen)
    result.update_time.FromMicroseconds(updated)
    set_times(
        result,
        submit_time=submit_time,
        register_time=registered_at,
        report_deadline_time=report_deadline,
        final_time=final_time,
    )
    if full:
        rows = connection.execute(
            "SELECT report FROM events WHERE message = ? ORDER BY event_time, sequence, event_id",
            (message,),
        ).fetchall()
        result.history.extend(pb.DeliveryReport.FromString(blob) for (blob,) in rows)
    return result

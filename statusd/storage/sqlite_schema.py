"""The SQLite store's schema: its statements, its version, and the migration of older files.

The schema version lives in the file (``PRAGMA user_version``; version 1 files kept it in the
``meta`` table). :func:`prepare` reads it when the store opens, inside one write transaction:

* a new file gets the whole schema;
* an older file is migrated in place, one :data:`MIGRATIONS` step per version;
* a newer file is refused with :class:`~statusd.storage.base.SchemaTooNew`, which names both
  versions, before anything in it is changed.

Then the columns and indexes of the status field table (:mod:`statusd.status_fields`) are
brought up to date: a field added to the table becomes a column (empty for the messages
already stored) and an index of every file that opens, with no version step of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS, StatusField
from statusd.storage.base import SchemaTooNew
from statusd.storage.sqlite_stats import (
    STATS_COLUMNS,
    STATS_GROUPS_TABLE,
    STATS_INDEXES,
    fill_groups,
)

SCHEMA_VERSION: Final = 4

#: Version 3: what registrations, report timeouts and delivery statistics need (all
#: microseconds since the epoch; NULL when unknown). ``submit_time``, ``registered_at``
#: and ``report_deadline`` come from the registration; ``country`` from the recipient;
#: ``final_time`` and ``error_code`` from the current entry (:func:`statusd.model.final_time`).
REGISTRATION_COLUMNS: Final = (
    "submit_time INTEGER",
    "registered_at INTEGER",
    "report_deadline INTEGER",
    "country TEXT NOT NULL DEFAULT ''",
    "final_time INTEGER",
    "error_code TEXT NOT NULL DEFAULT ''",
)
#: The sweeper's index holds exactly the messages that await a report (registered, current
#: entry non-terminal: :func:`statusd.model.awaiting_report`). The statistics have their own
#: columns and indexes (:mod:`statusd.storage.sqlite_stats`, version 4).
REGISTRATION_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS messages_report_deadline ON messages (report_deadline)"
    " WHERE report_deadline IS NOT NULL AND order_key < '1'",
    # List's awaiting_report filter, in list order.
    "CREATE INDEX IF NOT EXISTS messages_awaiting ON messages (id)"
    " WHERE report_deadline IS NOT NULL AND order_key < '1'",
)

#: The columns of ``messages`` before the status fields, which follow in table order.
_MESSAGES: Final = """CREATE TABLE IF NOT EXISTS messages (
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
{registration}
{stats}
{fields}
    UNIQUE (provider, account, message_id)
)"""

_OTHER_STATEMENTS: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS messages_updated ON messages (updated)",
    "CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id)",
    """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    report BLOB NOT NULL,
    UNIQUE (message, event_id)
)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    item BLOB NOT NULL,
    stored INTEGER NOT NULL
)""",
)


def column_definition(field: StatusField) -> str:
    return f"{field.column} TEXT NOT NULL DEFAULT ''"


def index_statement(field: StatusField) -> str:
    """The partial index of a status field: only messages that carry it."""
    columns = ", ".join((*field.index_prefix, field.column, "id"))
    return (
        f"CREATE INDEX IF NOT EXISTS messages_{field.index} ON messages ({columns})"
        f" WHERE {field.column} != ''"
    )


def schema_statements(fields: Sequence[StatusField] = FIELDS) -> list[str]:
    """Every statement that creates the schema of a new file."""
    columns = "".join(f"    {column_definition(field)},\n" for field in fields)
    registration = "".join(f"    {column},\n" for column in REGISTRATION_COLUMNS)
    stats = "".join(f"    {column},\n" for column in STATS_COLUMNS)
    messages = _MESSAGES.format(
        registration=registration.rstrip("\n"),
        stats=stats.rstrip("\n"),
        fields=columns.rstrip("\n"),
    )
    return [
        messages,
        *_OTHER_STATEMENTS,
        STATS_GROUPS_TABLE,
        *REGISTRATION_INDEXES,
        *STATS_INDEXES,
        *(index_statement(field) for field in fields),
    ]


def file_version(connection: sqlite3.Connection) -> int:
    """The schema version of the open file; 0 for a file without the schema."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version:
        return int(version)
    meta = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if meta is None:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def readable_version(connection: sqlite3.Connection, path: object) -> int:
    """The file's schema version; :class:`SchemaTooNew` when it is newer than this code's."""
    version = file_version(connection)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"sqlite {path}: schema version {version} was written by a newer statusd;"
            f" this one reads versions up to {SCHEMA_VERSION}"
        )
    return version


def _from_v1(connection: sqlite3.Connection) -> None:
    """Version 1 kept its version in ``meta``; the file header holds it from version 2 on."""
    connection.execute("DELETE FROM meta WHERE key = 'schema_version'")


def _from_v2(connection: sqlite3.Connection) -> None:
    """Version 3 adds the registration columns and indexes, and fills ``country``,
    ``final_time`` and ``error_code`` of the messages already stored."""
    for column in REGISTRATION_COLUMNS:
        connection.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    rows = connection.execute("SELECT id, latest, recipient FROM messages")
    while batch := rows.fetchmany(1000):
        updates = []
        for message, blob, recipient in batch:
            latest = pb.DeliveryReport.FromString(blob)
            updates.append(
                (model.country_of(recipient), model.final_time(latest), latest.error.code, message)
            )
        connection.executemany(
            "UPDATE messages SET country = ?, final_time = ?, error_code = ? WHERE id = ?",
            updates,
        )
    for statement in REGISTRATION_INDEXES:
        connection.execute(statement)


#: The version 3 statistics indexes, which version 4 replaces by narrower ones.
_V3_STATS_INDEXES: Final = ("messages_stats_submit", "messages_stats_first_seen")


def _from_v3(connection: sqlite3.Connection) -> None:
    """Version 4 counts the statistics by group id and latency bucket: adds the columns
    and the ``stats_groups`` table, sets every message's group, and replaces the wide
    version 3 statistics indexes by the narrow ones."""
    for column in STATS_COLUMNS:
        connection.execute(f"ALTER TABLE messages ADD COLUMN {column}")
    connection.execute(STATS_GROUPS_TABLE)
    fill_groups(connection)
    for name in _V3_STATS_INDEXES:
        connection.execute(f"DROP INDEX IF EXISTS {name}")
    for statement in STATS_INDEXES:
        connection.execute(statement)


#: ``{n: step}``: the step that takes a version-n file to version n + 1.
MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _from_v1,
    2: _from_v2,
    3: _from_v3,
}


def sync_fields(connection: sqlite3.Connection, fields: Sequence[StatusField] = FIELDS) -> None:
    """Adds the columns and indexes of status fields the file does not have yet."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(messages)")}
    for field in fields:
        if field.column not in present:
            connection.execute(f"ALTER TABLE messages ADD COLUMN {column_definition(field)}")
        connection.execute(index_statement(field))


def prepare(
    connection: sqlite3.Connection, path: object, fields: Sequence[StatusField] = FIELDS
) -> None:
    """Creates or migrates the schema in one transaction (see the module docstring)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = readable_version(connection, path)
        if version == 0:
            for statement in schema_statements(fields):
                connection.execute(statement)
        for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
            MIGRATIONS[step](connection)
        for statement in (*REGISTRATION_INDEXES, *STATS_INDEXES):  # added since a migration
            connection.execute(statement)
        sync_fields(connection, fields)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

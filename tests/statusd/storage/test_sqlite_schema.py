"""statusd.storage.sqlite_schema: a new file gets the schema, a file written by schema
version 1 (``data/schema_v1.sql``, the statements statusd ran before versions moved to the
file header) is migrated in place and keeps its rows, a field added to the status field table
becomes a column of an existing file, and a file from a newer statusd is refused (how statusd
then exits is in test_main.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS, StatusField
from statusd.storage.base import STALE, STORED, MessageFilter, SchemaTooNew
from statusd.storage.sqlite import SqliteStore
from statusd.storage.sqlite_schema import (
    SCHEMA_VERSION,
    file_version,
    prepare,
    schema_statements,
    sync_fields,
)
from tests.helpers.reports import BASE_MICROS, filled, key, report

SCHEMA_V1 = (Path(__file__).parent / "data" / "schema_v1.sql").read_text()
SENT = pb.DELIVERY_STATUS_SENT
DELIVERED = pb.DELIVERY_STATUS_DELIVERED


def write_v1_file(path: Path) -> pb.DeliveryReport:
    """A version 1 file holding one message (a SENT report with recipient and client
    reference) and one quarantined item, as statusd wrote them then."""
    (sent,) = filled(report(status=SENT, event_offset=10))
    sent.client_ref = "order-7"
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_V1)
        message = connection.execute(
            "INSERT INTO messages (provider, account, message_id, status, order_key, latest,"
            " first_seen, updated, report_count, terminal_mask, recipient, client_ref,"
            " parent_message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, '')",
            (
                *(sent.provider, sent.account, sent.message_id, SENT, model.order_key(sent)),
                *(sent.SerializeToString(), BASE_MICROS, BASE_MICROS, sent.recipient, "order-7"),
            ),
        ).lastrowid
        connection.execute(
            "INSERT INTO events (message, event_id, event_time, sequence, report)"
            " VALUES (?, ?, ?, 0, ?)",
            (message, sent.event_id, model.effective_time(sent), sent.SerializeToString()),
        )
        item = pb.QuarantinedItem(provider="plivo", reason="unknown status")
        connection.execute(
            "INSERT INTO quarantine (provider, account, item, stored) VALUES ('plivo', '', ?, ?)",
            (item.SerializeToString(), BASE_MICROS),
        )
    return sent


def header_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


async def test_a_new_file_gets_the_current_version(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "new.sqlite3")
    await store.open()
    await store.close()
    assert header_version(tmp_path / "new.sqlite3") == SCHEMA_VERSION


async def test_a_version_1_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    sent = write_v1_file(path)
    store = SqliteStore(path)
    await store.open()
    try:
        found = await store.get(key(), full=True)
        assert found is not None
        assert (found.status, found.client_ref, found.recipient) == (
            SENT,
            "order-7",
            "+41790000000",
        )
        assert list(found.history) == [sent]
        by_ref = await store.list_messages(
            MessageFilter(fields={"client_ref": "order-7"}), after=None, limit=5
        )
        assert [item.message_id for item in by_ref.items] == ["m-1"]
        assert [item.reason for item in await store.quarantined(after=None, limit=5)] == [
            "unknown status"
        ]
        delivered, other = filled(report(event_offset=20), report("m-2"))
        assert await store.commit([delivered, other]) == [STORED, STORED]
        assert await store.commit(filled(report(status=SENT, event_offset=5))) == [STALE]
        after = await store.get(key())
        assert after is not None
        assert (after.status, after.report_count, after.client_ref) == (DELIVERED, 3, "order-7")
    finally:
        await store.close()
    assert header_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as connection:
        assert file_version(connection) == SCHEMA_VERSION
        assert connection.execute("SELECT count(*) FROM meta").fetchone()[0] == 0


async def test_opening_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    write_v1_file(path)
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        await store.close()
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert (await reopened.list_messages(MessageFilter(), after=None, limit=5)).items
    finally:
        await reopened.close()


async def test_a_file_of_a_newer_statusd_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(SchemaTooNew) as refused:
        await store.open()
    await store.close()
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"up to {SCHEMA_VERSION}" in message
    assert header_version(path) == SCHEMA_VERSION + 1
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


EXTRA = StatusField("sender")


def test_a_field_added_to_the_table_becomes_a_column_of_an_existing_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as connection:
        prepare(connection, path)
        connection.execute(
            "INSERT INTO messages (provider, account, message_id, status, order_key, latest,"
            " first_seen, updated, report_count, terminal_mask)"
            " VALUES ('infobip', '', 'm-1', 3, 'k', x'', 1, 1, 1, 0)"
        )
        prepare(connection, path, (*FIELDS, EXTRA))
        row = connection.execute("SELECT message_id, sender FROM messages").fetchone()
        indexes = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'messages_sender'"
        ).fetchone()
    assert row == ("m-1", "")
    assert indexes == ("CREATE INDEX messages_sender ON messages (sender, id) WHERE sender != ''",)


def test_a_new_file_has_every_field_column_and_index(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None) as connection:
        for statement in schema_statements((*FIELDS, EXTRA)):
            connection.execute(statement)
        sync_fields(connection, (*FIELDS, EXTRA))
        columns = {row[1] for row in connection.execute("PRAGMA table_info(messages)")}
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    for field in (*FIELDS, EXTRA):
        assert field.column in columns
        assert f"messages_{field.index}" in names


SCHEMA_V2 = (Path(__file__).parent / "data" / "schema_v2.sql").read_text()


def write_v2_file(path: Path) -> list[pb.DeliveryReport]:
    """A version 2 file (``data/schema_v2.sql``) holding a DELIVERED message with an error
    code and a SENT one, as statusd wrote them then."""
    delivered, sent = filled(
        report(status=DELIVERED, event_offset=30, error_code="0", recipient="+447700900123"),
        report("m-2", status=SENT, event_offset=10, recipient=""),
    )
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_V2)
        for made in (delivered, sent):
            message = connection.execute(
                "INSERT INTO messages (provider, account, message_id, status, order_key,"
                " latest, first_seen, updated, report_count, terminal_mask, recipient)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                (
                    *(made.provider, made.account, made.message_id, made.status),
                    *(model.order_key(made), made.SerializeToString(), BASE_MICROS),
                    *(BASE_MICROS, model.terminal_bit(made.status), made.recipient),
                ),
            ).lastrowid
            connection.execute(
                "INSERT INTO events (message, event_id, event_time, sequence, report)"
                " VALUES (?, ?, ?, 0, ?)",
                (message, made.event_id, model.effective_time(made), made.SerializeToString()),
            )
    return [delivered, sent]


async def test_a_version_2_file_gets_the_registration_columns_filled(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    delivered, _ = write_v2_file(path)
    store = SqliteStore(path)
    await store.open()
    try:
        found = await store.get(key(), full=True)
        assert found is not None
        assert (found.status, found.country, list(found.history)) == (DELIVERED, "GB", [delivered])
        assert model.micros(found.final_time) == model.effective_time(delivered)
        assert not found.HasField("submit_time")
        assert not found.HasField("register_time")
        other = await store.get(key("m-2"))
        assert other is not None
        assert (other.country, other.HasField("final_time")) == ("", False)
        registration = pb.MessageRegistration(provider="infobip", message_id="m-2")
        registration.submit_time.FromMicroseconds(BASE_MICROS)
        registration.report_timeout.FromSeconds(60)
        assert await store.commit([model.registration_entry(registration, BASE_MICROS)]) == [STALE]
        due = await store.due_timeouts(BASE_MICROS + 60_000_000, 10)
        assert [(d.key, d.deadline) for d in due] == [
            (("infobip", "", "m-2"), BASE_MICROS + 60_000_000)
        ]
    finally:
        await store.close()
    assert header_version(path) == SCHEMA_VERSION == 4
    with sqlite3.connect(path) as connection:
        error_codes = connection.execute("SELECT error_code FROM messages ORDER BY id").fetchall()
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert error_codes == [("0",), ("",)]
    stats_indexes = {"messages_stats_by_submit", "messages_stats_by_first_seen"}
    assert {"messages_report_deadline", *stats_indexes} <= names


def test_the_sweeper_query_uses_the_deadline_index(tmp_path: Path) -> None:
    from statusd.storage.sqlite_sql import DUE_SQL

    with sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None) as connection:
        prepare(connection, tmp_path / "store.sqlite3")
        plan = connection.execute(f"EXPLAIN QUERY PLAN {DUE_SQL}", (0, 10)).fetchall()
    assert any("messages_report_deadline" in row[-1] for row in plan), plan


def test_the_awaiting_report_listing_uses_its_index(tmp_path: Path) -> None:
    from statusd.storage.sqlite_sql import MESSAGE_COLUMNS, where_clauses

    where, params = where_clauses(MessageFilter(awaiting_report=True))
    clauses = " AND ".join(where)
    sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {clauses} ORDER BY id LIMIT 10"  # noqa: S608
    with sqlite3.connect(tmp_path / "store.sqlite3", isolation_level=None) as connection:
        prepare(connection, tmp_path / "store.sqlite3")
        plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    assert any("messages_awaiting" in row[-1] for row in plan), plan


SCHEMA_V3 = (Path(__file__).parent / "data" / "schema_v3.sql").read_text()


def write_v3_file(path: Path) -> None:
    """A version 3 file (``data/schema_v3.sql``) with a delivered registered message, a
    registered one that timed out and an unregistered failed one, as statusd wrote them."""
    made = filled(
        report("m-1", DELIVERED, event_offset=40, recipient="+447700900123"),
        report("m-2", pb.DELIVERY_STATUS_NO_REPORT, event_offset=3600, recipient="+14155550100"),
        report("m-3", pb.DELIVERY_STATUS_UNDELIVERED, event_offset=5, error_code="30"),
    )
    submit = [BASE_MICROS, BASE_MICROS, None]
    final = [BASE_MICROS + 40_000_000, None, BASE_MICROS + 5_000_000]
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_V3)
        connection.execute("PRAGMA user_version = 3")
        for entry, submitted, final_time in zip(made, submit, final, strict=True):
            connection.execute(
                "INSERT INTO messages (provider, account, message_id, status, order_key,"
                " latest, first_seen, updated, report_count, terminal_mask, recipient,"
                " submit_time, registered_at, country, final_time, error_code)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?, ?, ?, ?)",
                (
                    *(entry.provider, entry.account, entry.message_id, entry.status),
                    *(model.order_key(entry), entry.SerializeToString(), BASE_MICROS),
                    *(BASE_MICROS, entry.recipient, submitted, submitted),
                    *(model.country_of(entry.recipient), final_time, entry.error.code),
                ),
            )


async def test_a_version_3_file_gets_statistics_groups_and_narrow_indexes(tmp_path: Path) -> None:
    from statusd import stats
    from tests.helpers.stats_reference import assert_agrees, rows_of

    path = tmp_path / "v3.sqlite3"
    write_v3_file(path)
    store = SqliteStore(path)
    await store.open()
    try:
        rows = await rows_of(store)
        for basis in ("submit_time", "first_seen"):
            for group_by in [(), tuple(stats.DIMENSIONS.values())]:
                query = stats.StatsQuery(0, BASE_MICROS + 1, basis, group_by)
                response = stats.stats_response(query, await store.delivery_stats(query))
                assert response.total.message_count == (3 if basis == "first_seen" else 2)
                assert_agrees(query, response, rows)
    finally:
        await store.close()
    assert header_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        buckets = connection.execute(
            "SELECT message_id, latency_bucket, stats_group IS NOT NULL FROM messages"
        ).fetchall()
    assert {"messages_stats_by_submit", "messages_stats_by_first_seen"} <= names
    assert not {"messages_stats_submit", "messages_stats_first_seen"} & names
    latency = stats.bucket_of(40_000_000)
    assert sorted(buckets) == [("m-1", latency, 1), ("m-2", None, 1), ("m-3", -1, 1)]

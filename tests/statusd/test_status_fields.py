"""statusd.status_fields: every field of the table drives the SQL, the MongoDB documents,
indexes and queries, the in-memory filter and the page-token fingerprint. Each test runs for
every field of the table, so a field added there is tested here with no new test; a field
that is not in the table (``EXTRA``) shows the pieces are built from the table alone."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING, UpdateOne

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import reads
from statusd.status_fields import FIELDS, NAMES, StatusField
from statusd.storage import mongo_commit, mongo_docs, sqlite_sql
from statusd.storage.base import MessageFilter
from statusd.storage.sqlite_schema import index_statement, schema_statements
from tests.helpers.reports import report

EXTRA = StatusField(
    "sender",
    column="sender_column",
    key="sender_key",
    index="by_sender",
    index_prefix=("provider",),
)


def test_an_extra_field_gets_its_column_and_indexes_from_the_table() -> None:
    created = schema_statements((*FIELDS, EXTRA))
    assert "    sender_column TEXT NOT NULL DEFAULT ''," in created[0]
    assert index_statement(EXTRA) == (
        "CREATE INDEX IF NOT EXISTS messages_by_sender ON messages"
        " (provider, sender_column, id) WHERE sender_column != ''"
    )
    assert index_statement(EXTRA) in created
    assert mongo_docs.field_index(EXTRA) == (
        "messages",
        "list_by_sender",
        [("provider", ASCENDING), ("sender_key", ASCENDING), *mongo_docs.LIST_ORDER],
        {"partialFilterExpression": {"sender_key": {"$gt": ""}}},
    )


def test_column_key_and_index_default_to_the_name() -> None:
    plain = StatusField("sender")
    assert (plain.column, plain.key, plain.index) == ("sender", "sender", "sender")


def test_the_filter_refuses_a_field_not_in_the_table() -> None:
    with pytest.raises(ValueError, match="not a status field: sender"):
        MessageFilter(fields={"sender": "x"})
    assert MessageFilter(fields=dict.fromkeys(NAMES, "")) == MessageFilter()


@pytest.mark.parametrize("field", FIELDS, ids=NAMES)
def test_sql_stores_fills_and_filters_the_field(field: StatusField) -> None:
    assert field.column in sqlite_sql.MESSAGE_COLUMNS.split(", ")
    assert field.column in sqlite_sql.INSERT_SQL
    fill = f"{field.column} = CASE WHEN {field.column} = '' THEN ? ELSE {field.column} END"
    assert fill in sqlite_sql.CURRENT_SQL
    assert fill in sqlite_sql.STALE_SQL
    query = MessageFilter(fields={field.name: "x"})
    assert sqlite_sql.where_clauses(query) == ([f"{field.column} = ?"], ["x"])
    assert index_statement(field) in schema_statements()


@pytest.mark.parametrize("field", FIELDS, ids=NAMES)
def test_mongodb_stores_fills_and_filters_the_field(field: StatusField) -> None:
    document = mongo_docs.skeleton(report(), 0)
    assert document[field.key] == ""
    query = MessageFilter(fields={field.name: "x"})
    assert mongo_docs.filter_query(query) == {"order_key": {"$gt": ""}, field.key: "x"}
    assert mongo_docs.field_index(field) in mongo_docs.INDEXES
    carrying = report()
    setattr(carrying, field.name, "x")
    filled = {field.key: "x", **({"country": ""} if field.name == "recipient" else {})}
    fill = UpdateOne(
        {"_id": mongo_docs.message_id_of_report(carrying), field.key: ""}, {"$set": filled}
    )
    later = report()
    setattr(later, field.name, "y")
    assert fill in mongo_commit.fill_updates([carrying, later])  # the first value fills
    document[field.key] = "first"
    document.update(order_key="0", report=report().SerializeToString())
    assert getattr(mongo_docs.message_status(document), field.name) == "first"


def status_with(name: str, value: str) -> pb.MessageStatus:
    status = pb.MessageStatus()
    setattr(status, name, value)
    return status


@pytest.mark.parametrize("field", FIELDS, ids=NAMES)
def test_the_in_memory_filter_and_the_fingerprint_select_on_the_field(field: StatusField) -> None:
    query = MessageFilter(fields={field.name: "x"})
    status = status_with(field.name, "x")
    assert query.matches(status)
    assert not query.matches(status_with(field.name, "y"))
    assert not query.matches(pb.MessageStatus())
    assert MessageFilter().matches(status)
    fingerprints = {reads.fingerprint(MessageFilter(fields={field.name: v})) for v in "xy"}
    assert len(fingerprints | {reads.fingerprint(MessageFilter())}) == 3


def test_the_fingerprint_of_the_fields_today_is_unchanged() -> None:
    """Page tokens issued before the table existed stay valid (the digest then)."""
    query = MessageFilter(provider="plivo", fields={"client_ref": "r", "parent_message_id": "p"})
    assert reads.fingerprint(query) == "c3f602b14144654aa88694c78700ee49"

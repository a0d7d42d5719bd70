"""GetDeliveryStats in every store against brute force over the same messages (the ``store``
fixture runs each test on SQLite, a real file, and on MongoDB over mongomock), and the SQLite
query plan. Covers statusd/storage/mongo_stats.py too: its pipeline runs under mongomock here."""

from __future__ import annotations

import itertools
import random
import sqlite3
from pathlib import Path

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model, stats
from statusd.storage.base import Store
from statusd.storage.sqlite import SqliteStore
from statusd.storage.sqlite_stats import (
    StatsGroups,
    count_cells,
    delivery_stats,
    fill_cells_sql,
    window_parts,
)
from tests.helpers.reports import BASE_MICROS, report
from tests.helpers.stats_reference import assert_agrees, rows_of

HOUR = 3_600_000_000
RECIPIENTS = ["+447700900123", "+4915112345678", "+14155550100", ""]  # GB, DE, US, none
FINALS = [
    (pb.DELIVERY_STATUS_DELIVERED, ""),
    (pb.DELIVERY_STATUS_DELIVERED, ""),
    (pb.DELIVERY_STATUS_UNDELIVERED, "30"),
    (pb.DELIVERY_STATUS_REJECTED, "61"),
    (pb.DELIVERY_STATUS_UNKNOWN, ""),
]


def registration_entry(
    message_id: str, provider: str, account: str, submit: int, recipient: str
) -> pb.DeliveryReport:
    registration = pb.MessageRegistration(
        provider=provider, account=account, message_id=message_id, recipient=recipient
    )
    registration.submit_time.FromMicroseconds(submit)
    registration.report_timeout.FromSeconds(3600)
    return model.registration_entry(registration, submit)


def messages(count: int, seed: int) -> list[pb.DeliveryReport]:
    """Registrations, reports and timeouts of ``count`` messages over two days."""
    rnd = random.Random(seed)
    entries = []
    for number in range(count):
        message_id, provider = f"m-{number}", rnd.choice(["infobip", "plivo", "twilio"])
        account, recipient = rnd.choice(["", "eu"]), rnd.choice(RECIPIENTS)
        submit = BASE_MICROS + rnd.randrange(48 * HOUR)
        offset = (submit - BASE_MICROS) // 1_000_000

        def made(status: int, at: int, code: str = "") -> pb.DeliveryReport:
            return report(
                message_id,  # noqa: B023 - used right away
                status,
                provider=provider,  # noqa: B023
                account=account,  # noqa: B023
                recipient=recipient,  # noqa: B023
                event_offset=at,
                error_code=code,
            )

        registered = rnd.random() < 0.8
        if registered:
            entries.append(registration_entry(message_id, provider, account, submit, recipient))
        fate = rnd.random()
        if fate < 0.2:
            entries.append(made(pb.DELIVERY_STATUS_SENT, offset))
        if fate < 0.7:
            status, code = rnd.choice(FINALS)
            # Mostly seconds to minutes after submission; now and then before it (skew).
            delay = rnd.choice([rnd.randrange(1, 600), rnd.randrange(600, 7200), -5])
            entries.append(made(status, offset + delay, code))
        elif registered and fate < 0.85:
            key = (provider, account, message_id)
            entries.append(model.timeout_entry(key, submit + HOUR, submit + HOUR))
        elif not registered:
            entries.append(made(pb.DELIVERY_STATUS_ACCEPTED, offset))
    return [model.with_event_id(entry) for entry in entries]


QUERIES = [
    ((), None, None, "", None),
    (("provider",), None, None, "", None),
    (("provider", "country"), 6, 30, "", None),
    (("status", "error_code"), 0, 24, "plivo", None),
    (("provider", "account", "country", "status", "error_code"), 12, 48, "", "eu"),
    (("country",), 0, 1, "", ""),
]


@pytest.mark.parametrize(("group_by", "start_hour", "end_hour", "provider", "account"), QUERIES)
async def test_stats_agree_with_brute_force(
    store: Store,
    group_by: tuple[str, ...],
    start_hour: int | None,
    end_hour: int | None,
    provider: str,
    account: str | None,
) -> None:
    entries = messages(120, seed=len(group_by))
    for start in range(0, len(entries), 50):
        await store.commit([e for e in entries[start : start + 50] if not model.is_timeout(e)])
    # The sweeper's entries come later, on messages stored by then.
    await store.commit([entry for entry in entries if model.is_timeout(entry)])
    rows = await rows_of(store)
    assert any(row.status == pb.DELIVERY_STATUS_NO_REPORT for row in rows)
    windows = [(BASE_MICROS, BASE_MICROS + 48 * HOUR)]
    if start_hour is not None and end_hour is not None:
        windows.append((BASE_MICROS + start_hour * HOUR, BASE_MICROS + end_hour * HOUR))
    queries = [
        stats.StatsQuery(start, end, "submit_time", group_by, provider, account)
        for start, end in windows
    ]
    seen = sorted(row.first_seen for row in rows)
    queries.append(
        stats.StatsQuery(seen[len(seen) // 3], seen[-1] + 1, "first_seen", group_by, provider)
    )
    for query in queries:
        response = stats.stats_response(query, await store.delivery_stats(query))
        assert response.total.message_count > 0 or provider
        assert_agrees(query, response, rows)


async def test_an_empty_window_has_a_zero_total(store: Store) -> None:
    query = stats.StatsQuery(1, 2, "submit_time", ("provider",))
    response = stats.stats_response(query, await store.delivery_stats(query))
    assert response.total.message_count == 0
    assert not response.groups


@pytest.mark.parametrize("basis", ["submit_time", "first_seen"])
@pytest.mark.parametrize(("provider", "account"), [("", None), ("infobip", "eu")])
async def test_the_sqlite_query_reads_only_a_range_of_a_covering_index(
    tmp_path: Path, basis: str, provider: str, account: str | None
) -> None:
    store = SqliteStore(tmp_path / "plan.sqlite3")
    await store.open()
    await store.close()
    connection = sqlite3.connect(store.path)
    connection.execute(
        "CREATE TEMP TABLE stats_cells (cell INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
    )
    query = stats.StatsQuery(0, 10, basis, tuple(stats.DIMENSIONS.values()), provider, account)
    sql, params = fill_cells_sql(query)
    plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    index = "messages_stats_by_submit" if basis == "submit_time" else "messages_stats_by_first_seen"
    # SQLite names an index holding a generated column "INDEX", not "COVERING INDEX", even
    # when the program reads every value from it: the program itself says what it reads.
    assert f"USING INDEX {index} ({basis}>? AND {basis}<?)" in plan, plan
    assert "SCAN messages" not in plan, plan
    (table_page,) = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'messages'"
    ).fetchone()
    program = connection.execute(f"EXPLAIN {sql}", params).fetchall()
    table_cursors = {row[2] for row in program if row[1] == "OpenRead" and row[3] == table_page}
    assert table_cursors, program
    assert not [row for row in program if row[1] == "Column" and row[2] in table_cursors]


def group_ids(path: Path) -> dict[str, tuple[str, str, str, int, str]]:
    """Each message's statistics group, as the values it stands for."""
    with sqlite3.connect(path) as connection:
        found = connection.execute(
            "SELECT m.message_id, g.provider, g.account, g.country, g.status, g.error_code"
            " FROM messages m JOIN stats_groups g ON g.id = m.stats_group"
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in found}


async def test_every_write_keeps_the_statistics_group_of_its_message(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "groups.sqlite3")
    await store.open()
    try:
        sent = report("m-1", pb.DELIVERY_STATUS_SENT, recipient="", event_offset=10)
        await store.commit([model.with_event_id(sent)])
        assert group_ids(store.path)["m-1"] == ("infobip", "", "", pb.DELIVERY_STATUS_SENT, "")
        # An older report carries the recipient: stale, yet it fills the country.
        older = report("m-1", pb.DELIVERY_STATUS_ACCEPTED, recipient="+447700900123")
        await store.commit([model.with_event_id(older)])
        assert group_ids(store.path)["m-1"] == ("infobip", "", "GB", pb.DELIVERY_STATUS_SENT, "")
        failed = report("m-1", pb.DELIVERY_STATUS_UNDELIVERED, event_offset=20, error_code="30")
        await store.commit([model.with_event_id(failed)])
        assert group_ids(store.path)["m-1"] == (
            *("infobip", "", "GB"),
            *(pb.DELIVERY_STATUS_UNDELIVERED, "30"),
        )
    finally:
        await store.close()
    # The groups are the same as a recount from the message columns.
    with sqlite3.connect(store.path) as connection:
        stored = connection.execute(
            "SELECT count(*) FROM messages m JOIN stats_groups g ON g.id = m.stats_group"
            " WHERE (g.provider, g.account, g.country, g.status, g.error_code)"
            " = (m.provider, m.account, m.country, m.status, m.error_code)"
        ).fetchone()
    assert stored == (1,)


def test_the_group_dictionary_forgets_what_a_rollback_took_back(tmp_path: Path) -> None:
    path = tmp_path / "rollback.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as connection:
        from statusd.storage.sqlite_schema import prepare

        prepare(connection, path)
        groups = StatsGroups(limit=2)
        key = ("infobip", "", "GB", pb.DELIVERY_STATUS_DELIVERED, "")
        connection.execute("BEGIN")
        first = groups.id_of(connection, key)
        connection.execute("ROLLBACK")
        groups.forget()
        connection.execute("BEGIN")
        again = groups.id_of(connection, key)
        connection.execute("COMMIT")
        (stored,) = connection.execute("SELECT id FROM stats_groups").fetchone()
        assert again == stored
        assert first == again  # the same id is handed out again, and now it is stored
        # Past its limit the dictionary starts over; ids stay those of the table.
        other = [("plivo", "", country, 4, "") for country in ("DE", "FR", "US")]
        ids = [groups.id_of(connection, made) for made in other]
        assert len(set(ids)) == 3
        assert groups.id_of(connection, key) == stored


async def test_a_window_counted_in_parts_gives_the_answer_of_one_count(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "parts.sqlite3")
    await store.open()
    try:
        entries = messages(120, seed=7)
        await store.commit([e for e in entries if not model.is_timeout(e)])
        await store.commit([e for e in entries if model.is_timeout(e)])
    finally:
        await store.close()
    query = stats.StatsQuery(0, BASE_MICROS + 49 * HOUR, "submit_time", ("provider", "status"))
    with sqlite3.connect(store.path, isolation_level=None) as connection:
        whole = window_parts(connection, query, 1)
        parts = window_parts(connection, query, 3)
        assert whole == [query]
        assert len(parts) == 3
        assert (parts[0].start, parts[-1].end) == (query.start, query.end)
        assert all(a.end == b.start for a, b in itertools.pairwise(parts))
        one = delivery_stats(connection, query, count_cells(connection, query))
        cells = itertools.chain.from_iterable(count_cells(connection, part) for part in parts)
        split = delivery_stats(connection, query, cells)
        counted = [count_cells(connection, part) for part in parts]
    assert all(counted)  # every part holds messages: the cuts follow the data, not the window
    assert sorted(map(tuple, one.groups)) == sorted(map(tuple, split.groups))
    assert one.total_buckets == split.total_buckets
    registered = {e.message_id for e in entries if model.is_registration(e)}
    assert sum(row[2] for row in one.groups) == len(registered)  # submit basis: registered

"""GetDeliveryStats in every store against brute force over the same messages (the ``store``
fixture runs each test on SQLite, a real file, and on MongoDB over mongomock), and the SQLite
query plan. Covers statusd/storage/mongo_stats.py too: its pipeline runs under mongomock here."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model, stats
from statusd.storage.base import Store
from statusd.storage.sqlite import SqliteStore
from statusd.storage.sqlite_stats import stats_sql
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
@pytest.mark.parametrize("group_by", [(), tuple(stats.DIMENSIONS.values())])
async def test_the_sqlite_query_reads_only_a_range_of_a_covering_index(
    tmp_path: Path, basis: str, group_by: tuple[str, ...]
) -> None:
    store = SqliteStore(tmp_path / "plan.sqlite3")
    await store.open()
    await store.close()
    connection = sqlite3.connect(store.path)
    sql, params = stats_sql(stats.StatsQuery(0, 10, basis, group_by, "infobip", "eu"))
    plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    index = "messages_stats_submit" if basis == "submit_time" else "messages_stats_first_seen"
    assert f"USING COVERING INDEX {index} ({basis}>? AND {basis}<?)" in plan, plan
    assert "SCAN messages" not in plan, plan

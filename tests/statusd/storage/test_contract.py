"""The store contract (writes and reads; changes are in test_contract_changes.py), run against
every backend (see conftest.py). Covers statusd/storage/base.py and sqlite_sql.py: the contract
itself, and the SQL through which the SQLite backend runs every case; each backend's own
behaviour is in test_sqlite.py, test_sqlite_schema.py and test_mongo.py."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.committer import GroupCommitter
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    MessageFilter,
    Store,
)
from tests.helpers.reports import BASE_MICROS, filled, key, random_reports, report
from tests.helpers.stores import assert_in_the_fold

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
UNDELIVERED = pb.DELIVERY_STATUS_UNDELIVERED
SENT = pb.DELIVERY_STATUS_SENT
QUEUED = pb.DELIVERY_STATUS_QUEUED


async def test_outcomes_stored_duplicate_stale(store: Store) -> None:
    delivered, sent = filled(
        report(status=DELIVERED, event_offset=20), report(status=SENT, event_offset=10)
    )
    assert await store.commit([delivered]) == [STORED]
    assert await store.commit([delivered, sent]) == [DUPLICATE, STALE]
    status = await store.get(key())
    assert status is not None
    assert status.status == DELIVERED
    assert status.latest_report == delivered
    assert status.report_count == 2
    assert not status.conflict
    assert status.recipient == "+41790000000"
    assert len(status.history) == 0


async def test_full_view_has_history_oldest_first(store: Store) -> None:
    delivered, sent, queued = filled(
        report(status=DELIVERED, event_offset=30),
        report(status=SENT, event_offset=20),
        report(status=QUEUED, event_offset=10),
    )
    await store.commit([delivered, sent, queued])
    status = await store.get(key(), full=True)
    assert status is not None
    assert [item.status for item in status.history] == [QUEUED, SENT, DELIVERED]
    assert status.first_seen_time.ToMicroseconds() <= status.update_time.ToMicroseconds()


async def test_conflicting_terminal_reports_are_flagged(store: Store) -> None:
    await store.commit(
        filled(
            report(status=UNDELIVERED, event_offset=10), report(status=DELIVERED, event_offset=5)
        )
    )
    status = await store.get(key())
    assert status is not None
    assert status.conflict
    assert status.status == UNDELIVERED


async def test_same_message_twice_in_one_batch(store: Store) -> None:
    sent, delivered = filled(
        report(status=SENT, event_offset=1), report(status=DELIVERED, event_offset=2)
    )
    assert await store.commit([sent, delivered, sent]) == [STORED, STORED, DUPLICATE]
    status = await store.get(key())
    assert status is not None
    assert status.status == DELIVERED
    assert status.report_count == 2


async def test_messages_are_keyed_by_provider_account_and_id(store: Store) -> None:
    await store.commit(
        filled(
            report(message_id="x", provider="infobip"),
            report(message_id="x", provider="plivo"),
            report(message_id="x", provider="plivo", account="eu", status=SENT),
        )
    )
    assert (await store.get(key("x", "plivo", "eu"))).status == SENT  # type: ignore[union-attr]
    assert (await store.get(key("x", "plivo"))).status == DELIVERED  # type: ignore[union-attr]
    assert await store.get(key("y")) is None
    found = await store.batch_get([key("x", "plivo"), key("nope"), key("x")])
    assert [(item.provider, item.message_id) for item in found] == [
        ("plivo", "x"),
        ("infobip", "x"),
    ]


async def test_commits_survive_reopening(store: Store, reopen: Callable[[], Store]) -> None:
    await store.commit(filled(report(status=DELIVERED)))
    again = reopen()
    await again.open()
    try:
        status = await again.get(key())
        assert status is not None
        assert status.status == DELIVERED
    finally:
        await again.close()


async def test_quarantine_is_kept_until_released(store: Store) -> None:
    item = pb.QuarantinedItem(provider="infobip", reason="status is missing", raw='{"x":1}')
    item.received_time.FromMicroseconds(BASE_MICROS)
    assert await store.commit([], [item, item]) == []
    kept = await store.quarantined(after=None, limit=10)
    assert [entry.reason for entry in kept] == ["status is missing"] * 2
    assert all(entry.id for entry in kept)
    assert await store.count_quarantined() == 2
    assert await store.release([kept[0].id]) == 1
    assert await store.count_quarantined() == 1
    left = await store.quarantined(after=None, limit=10)
    assert [entry.id for entry in left] == [kept[1].id]


async def test_list_filters_and_pages_in_first_seen_order(store: Store) -> None:
    for index in range(7):
        status = DELIVERED if index % 2 else SENT
        await store.commit(
            filled(report(message_id=f"m-{index}", status=status, client_ref=f"ref-{index % 3}"))
        )
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_messages(MessageFilter(), after=cursor, limit=3)
        seen += [item.message_id for item in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == [f"m-{index}" for index in range(7)]
    delivered = await store.list_messages(
        MessageFilter(statuses=frozenset({DELIVERED})), after=None, limit=10
    )
    assert [item.message_id for item in delivered.items] == ["m-1", "m-3", "m-5"]
    by_ref = await store.list_messages(
        MessageFilter(fields={"client_ref": "ref-0"}), after=None, limit=10
    )
    assert [item.message_id for item in by_ref.items] == ["m-0", "m-3", "m-6"]
    none = await store.list_messages(MessageFilter(provider="plivo"), after=None, limit=10)
    assert none.items == []
    assert none.cursor is None


async def test_purge_drops_messages_not_updated_since(store: Store) -> None:
    await store.commit(filled(report()))
    assert await store.purge(before_micros=0) == 0
    far_future = 2**62
    assert await store.purge(before_micros=far_future) == 1
    assert await store.get(key()) is None


async def test_concurrent_shuffled_duplicated_ingests_end_in_the_fold(store: Store) -> None:
    """Many concurrent callers, shuffled and duplicated reports for the same messages: the
    final state is what the pure fold computes, and the counts are exact."""
    distinct = random_reports(7, 120)
    arrivals = distinct * 3
    random.Random(7).shuffle(arrivals)
    batches = [arrivals[index : index + 7] for index in range(0, len(arrivals), 7)]
    committer = GroupCommitter(store, max_reports=50)
    async with committer:
        results = await asyncio.gather(*(committer.submit(batch) for batch in batches))
    outcomes = [outcome for result in results for outcome in result]
    assert outcomes.count(DUPLICATE) == len(arrivals) - len(distinct)
    assert outcomes.count(STORED) + outcomes.count(STALE) == len(distinct)
    assert committer.commits < len(batches)
    await assert_in_the_fold(store, distinct)


@pytest.mark.parametrize("limit", [1, 2, 100])
async def test_list_limit_and_cursor(store: Store, limit: int) -> None:
    await store.commit(filled(*[report(message_id=f"n-{index}") for index in range(3)]))
    page = await store.list_messages(MessageFilter(), after=None, limit=limit)
    assert len(page.items) == min(limit, 3)
    assert (page.cursor is None) == (limit >= 3)


async def test_parts_are_found_by_parent_message_id(store: Store) -> None:
    parts = []
    for index in (1, 2):
        part = report(message_id=f"part-{index}", status=DELIVERED)
        part.parent_message_id = "whole-1"
        part.part_index, part.part_count = index, 2
        parts.append(part)
    await store.commit(filled(*parts, report(message_id="single")))
    found = await store.list_messages(
        MessageFilter(provider="infobip", fields={"parent_message_id": "whole-1"}),
        after=None,
        limit=10,
    )
    assert [item.message_id for item in found.items] == ["part-1", "part-2"]
    assert all(item.parent_message_id == "whole-1" for item in found.items)


async def test_several_store_instances_at_once_end_in_the_fold(
    store: Store, reopen: Callable[[], Store]
) -> None:
    """Three independent store instances over one database (three statusd replicas), each
    group-committing its share of shuffled, duplicated reports at the same time: the final
    state is the pure fold, and stored + stale + duplicates are exact."""
    distinct = random_reports(11, 90, messages=6)
    arrivals = distinct * 3
    random.Random(11).shuffle(arrivals)
    batches = [arrivals[index : index + 5] for index in range(0, len(arrivals), 5)]
    replicas = [store, reopen(), reopen()]
    for replica in replicas[1:]:
        await replica.open()
    committers = [GroupCommitter(replica, max_reports=15) for replica in replicas]
    try:
        for committer in committers:
            committer.start()
        results = await asyncio.gather(
            *(committers[i % 3].submit(batch) for i, batch in enumerate(batches))
        )
    finally:
        for committer in committers:
            await committer.stop()
    outcomes = [outcome for result in results for outcome in result]
    assert outcomes.count(DUPLICATE) == len(arrivals) - len(distinct)
    assert outcomes.count(STORED) + outcomes.count(STALE) == len(distinct)
    try:
        for replica in replicas:
            await assert_in_the_fold(replica, distinct)
    finally:
        for replica in replicas[1:]:
            await replica.close()


async def test_operator_like_provider_data_is_stored_as_data(store: Store) -> None:
    """``$``-prefixed and dotted keys and values from a provider are never interpreted."""
    tricky = report(message_id='$where.x", "y', client_ref="$gt", recipient="+41790000009")
    tricky.raw = '{"$set": {"a.b": 1}, "$where": "sleep(1)", "x.y": {"$ne": null}}'
    tricky.provider_status = "$inc"
    tricky.error.description = "{$regex: '.*'}"
    [tricky] = filled(tricky)
    assert await store.commit([tricky]) == [STORED]
    status = await store.get(key('$where.x", "y'), full=True)
    assert status is not None
    assert status.latest_report == tricky
    assert list(status.history) == [tricky]
    by_ref = await store.list_messages(
        MessageFilter(fields={"client_ref": "$gt"}), after=None, limit=5
    )
    assert [item.message_id for item in by_ref.items] == ['$where.x", "y']
    assert (
        await store.list_messages(MessageFilter(fields={"client_ref": "x"}), after=None, limit=5)
    ).items == []


async def test_fields_are_filled_by_the_first_report_that_has_them(store: Store) -> None:
    delivered = report(status=DELIVERED, event_offset=9, recipient="")
    late = report(status=SENT, event_offset=1, recipient="+41790000002", client_ref="ref-9")
    other = report(status=QUEUED, event_offset=0, recipient="+41790000003", client_ref="ref-8")
    assert await store.commit(filled(delivered)) == [STORED]
    assert await store.commit(filled(late, other)) == [STALE, STALE]
    status = await store.get(key())
    assert status is not None
    assert (status.recipient, status.client_ref) == ("+41790000002", "ref-9")
    assert status.status == DELIVERED
    found = await store.list_messages(
        MessageFilter(fields={"recipient": "+41790000002"}), after=None, limit=5
    )
    assert [item.message_id for item in found.items] == ["m-1"]


async def test_list_by_update_time_provider_and_account(store: Store) -> None:
    await store.commit(filled(report(message_id="a", provider="plivo", account="eu")))
    first = await store.get(key("a", "plivo", "eu"))
    assert first is not None
    boundary = first.update_time.ToMicroseconds() + 1
    await asyncio.sleep(0.002)
    await store.commit(filled(report(message_id="b", provider="plivo")))
    newer = await store.list_messages(
        MessageFilter(update_time_start=boundary), after=None, limit=10
    )
    assert [item.message_id for item in newer.items] == ["b"]
    older = await store.list_messages(MessageFilter(update_time_end=boundary), after=None, limit=10)
    assert [item.message_id for item in older.items] == ["a"]
    eu = await store.list_messages(
        MessageFilter(provider="plivo", account="eu"), after=None, limit=10
    )
    assert [item.message_id for item in eu.items] == ["a"]
    plivo = await store.list_messages(MessageFilter(provider="plivo"), after=None, limit=10)
    assert [item.message_id for item in plivo.items] == ["a", "b"]


async def test_pages_neither_skip_nor_repeat_while_reports_keep_arriving(store: Store) -> None:
    for index in range(6):
        await store.commit(filled(report(message_id=f"p-{index}", status=SENT)))
    first = await store.list_messages(MessageFilter(), after=None, limit=3)
    # Every message gets a newer report and new messages arrive before the next page.
    await store.commit(
        filled(
            *[
                report(message_id=f"p-{index}", status=DELIVERED, event_offset=5)
                for index in range(6)
            ],
            report(message_id="p-new"),
        )
    )
    rest: list[str] = []
    cursor = first.cursor
    while cursor is not None:
        page = await store.list_messages(MessageFilter(), after=cursor, limit=3)
        rest += [item.message_id for item in page.items]
        cursor = page.cursor
    listed = [item.message_id for item in first.items] + rest
    assert listed == [f"p-{index}" for index in range(6)] + ["p-new"]


async def test_batch_get_full_keeps_the_order_of_the_keys(store: Store) -> None:
    await store.commit(
        filled(
            report(message_id="x", status=SENT, event_offset=1),
            report(message_id="x", status=DELIVERED, event_offset=2),
            report(message_id="y"),
        )
    )
    found = await store.batch_get([key("y"), key("missing"), key("x")], full=True)
    assert [item.message_id for item in found] == ["y", "x"]
    assert [len(item.history) for item in found] == [1, 2]


async def test_purge_keeps_what_was_updated_since(store: Store) -> None:
    await store.commit(filled(report(message_id="kept")))
    kept = await store.get(key("kept"))
    assert kept is not None
    assert await store.purge(before_micros=kept.update_time.ToMicroseconds()) == 0
    assert await store.get(key("kept"), full=True) is not None
    item = pb.QuarantinedItem(provider="infobip", reason="bad", raw="{}")
    await store.commit([], [item])
    assert await store.purge(before_micros=2**62) == 1
    assert await store.quarantined(after=None, limit=10) == []

"""The store contract, run against every backend (see conftest.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter
from statusd.storage.base import DUPLICATE, STALE, STORED, MessageFilter, Store
from tests.helpers.reports import BASE_MICROS, report

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
UNDELIVERED = pb.DELIVERY_STATUS_UNDELIVERED
SENT = pb.DELIVERY_STATUS_SENT
QUEUED = pb.DELIVERY_STATUS_QUEUED


def key(message_id: str = "m-1", provider: str = "infobip", account: str = "") -> pb.MessageKey:
    return pb.MessageKey(provider=provider, account=account, message_id=message_id)


def filled(*items: pb.DeliveryReport) -> list[pb.DeliveryReport]:
    return [model.with_event_id(item) for item in items]


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
    assert await store.release([kept[0].id]) == 1
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
    by_ref = await store.list_messages(MessageFilter(client_ref="ref-0"), after=None, limit=10)
    assert [item.message_id for item in by_ref.items] == ["m-0", "m-3", "m-6"]
    none = await store.list_messages(MessageFilter(provider="plivo"), after=None, limit=10)
    assert none.items == []
    assert none.cursor is None


async def test_changes_follow_every_new_report(store: Store) -> None:
    assert await store.last_position() is None
    sent, delivered = filled(
        report(status=SENT, event_offset=1), report(status=DELIVERED, event_offset=2)
    )
    await store.commit([sent])
    start = await store.last_position()
    await store.commit([delivered, sent])
    changes = await store.changes(MessageFilter(), after=start, limit=10)
    assert [change.report.status for change in changes] == [DELIVERED]
    assert changes[0].message_status.status == DELIVERED
    everything = await store.changes(MessageFilter(), after=None, limit=10)
    assert [change.report.status for change in everything] == [SENT, DELIVERED]


async def test_purge_drops_messages_not_updated_since(store: Store) -> None:
    await store.commit(filled(report()))
    assert await store.purge(before_micros=0) == 0
    far_future = 2**62
    assert await store.purge(before_micros=far_future) == 1
    assert await store.get(key()) is None


async def test_concurrent_shuffled_duplicated_ingests_end_in_the_fold(store: Store) -> None:
    """Many concurrent callers, shuffled and duplicated reports for the same messages: the
    final state is what the pure fold computes, and the counts are exact."""
    rng = random.Random(7)
    statuses = [value for value in pb.DeliveryStatus.values() if value != 0]
    distinct = filled(
        *[
            report(
                message_id=f"m-{rng.randint(0, 4)}",
                status=rng.choice(statuses),
                event_offset=rng.choice([None, *range(6)]),
                received_offset=index,
                provider_status=f"s-{index}",
            )
            for index in range(120)
        ]
    )
    arrivals = distinct * 3
    rng.shuffle(arrivals)
    batches = [arrivals[index : index + 7] for index in range(0, len(arrivals), 7)]
    committer = GroupCommitter(store, max_reports=50)
    async with committer:
        results = await asyncio.gather(*(committer.submit(batch) for batch in batches))
    outcomes = [outcome for result in results for outcome in result]
    assert outcomes.count(DUPLICATE) == len(arrivals) - len(distinct)
    assert outcomes.count(STORED) + outcomes.count(STALE) == len(distinct)
    assert committer.commits < len(batches)
    for message_key, state in model.fold(distinct).items():
        status = await store.get(key(message_key[2], message_key[0], message_key[1]), full=True)
        assert status is not None
        assert status.latest_report == state.latest
        assert status.report_count == state.report_count
        assert status.conflict == state.conflict
        assert [item.event_id for item in status.history] == [
            item.event_id for item in state.history
        ]


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
        MessageFilter(provider="infobip", parent_message_id="whole-1"), after=None, limit=10
    )
    assert [item.message_id for item in found.items] == ["part-1", "part-2"]
    assert all(item.parent_message_id == "whole-1" for item in found.items)

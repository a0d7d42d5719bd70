"""The store contract, part two: changes and positions (Watch's foundation), on every backend
(see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage.base import InvalidPosition, MessageFilter, Store
from tests.helpers.reports import filled, report

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
SENT = pb.DELIVERY_STATUS_SENT


async def test_changes_follow_every_new_report(store: Store) -> None:
    initial = await store.last_position()  # None, or a position naming "now"
    if initial is not None:
        assert await store.changes(MessageFilter(), after=initial, limit=10) == []
    sent, delivered = filled(
        report(status=SENT, event_offset=1), report(status=DELIVERED, event_offset=2)
    )
    await store.commit([sent])
    start = await store.last_position()
    assert start is not None
    await store.commit([delivered, sent])
    changes = await store.changes(MessageFilter(), after=start, limit=10)
    assert [change.report.status for change in changes] == [DELIVERED]
    assert changes[0].message_status.status == DELIVERED
    assert changes[0].message_status.report_count == 2
    for since in (initial, None):
        everything = await store.changes(MessageFilter(), after=since, limit=10)
        assert [change.report.status for change in everything] == [SENT, DELIVERED]
    assert await store.changes(MessageFilter(), after=changes[-1].position, limit=10) == []


async def test_changes_filter_and_limit_resume_where_they_stopped(store: Store) -> None:
    start = await store.last_position()
    for index in range(6):
        status = DELIVERED if index % 2 else SENT
        await store.commit(filled(report(message_id=f"w-{index}", status=status)))
    delivered = MessageFilter(statuses=frozenset({DELIVERED}))
    seen: list[str] = []
    position = start
    while True:
        batch = await store.changes(delivered, after=position, limit=1)
        if not batch:
            break
        assert len(batch) == 1
        seen.append(batch[0].report.message_id)
        position = batch[0].position
    assert seen == ["w-1", "w-3", "w-5"]
    newest = await store.last_position()
    await store.commit(filled(report(message_id="w-9", status=DELIVERED)))
    later = await store.changes(delivered, after=newest, limit=10)
    assert [change.report.message_id for change in later] == ["w-9"]


async def test_another_instances_commits_reach_changes_after_a_wait(
    store: Store, reopen: Callable[[], Store]
) -> None:
    await store.commit(filled(report(message_id="first")))
    position = await store.last_position()
    other = reopen()
    await other.open()
    try:
        waiting = asyncio.create_task(store.wait_for_changes(position, 0.2))
        await asyncio.sleep(0)
        await other.commit(filled(report(message_id="from-another-replica")))
        await store.commit(filled(report(message_id="own")))  # a single-writer feed needs it
        await asyncio.wait_for(waiting, 10)
    finally:
        await other.close()
    found = await store.changes(MessageFilter(), after=position, limit=10)
    assert {change.report.message_id for change in found} == {"from-another-replica", "own"}


async def test_positions_and_cursors_from_elsewhere_are_refused(store: Store) -> None:
    await store.commit(filled(report()))
    for bad in ("garbage", "-1", "0x10", "c", "s", "\u00e9"):
        with pytest.raises(InvalidPosition):
            await store.changes(MessageFilter(), after=bad, limit=10)
        with pytest.raises(InvalidPosition):
            await store.list_messages(MessageFilter(), after=bad, limit=10)

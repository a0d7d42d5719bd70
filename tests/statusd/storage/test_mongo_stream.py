"""statusd/storage/mongo_stream.py: the change-stream feed on a replica set (mongomock with the
adapter's emulated change stream): one long-lived stream per process, resumed from its token,
woken by other replicas' commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from statusd import model
from statusd.storage.base import Change, InvalidPosition, MessageFilter, StoreUnavailable
from statusd.storage.mongo_stream import StreamFeed
from statusd.watch import ChangeHub
from tests.helpers.mongomock_async import MockServer
from tests.helpers.reports import report


async def test_a_change_stream_wakes_a_replica_when_another_one_commits(
    replset: MockServer, stores: Callable[..., Any]
) -> None:
    watcher, writer = await stores(replset), await stores(replset)
    position = await watcher.last_position()
    waiting = asyncio.create_task(watcher.wait_for_changes(position, 60))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await writer.commit([model.with_event_id(report("elsewhere"))])
    await asyncio.wait_for(waiting, 10)  # woken by the other replica, long before 60 s
    found = await watcher.changes(MessageFilter(), after=position, limit=10)
    assert [change.report.message_id for change in found] == ["elsewhere"]


async def test_a_position_the_oplog_no_longer_holds_is_refused(
    replset: MockServer, stores: Callable[..., Any]
) -> None:
    store = await stores(replset)
    position = await store.last_position()
    await store.commit([model.with_event_id(report())])
    replset.forget_changes()
    with pytest.raises(InvalidPosition, match="no longer in the oplog"):
        await store.changes(MessageFilter(), after=position, limit=10)
    await asyncio.wait_for(store.wait_for_changes(position, 60), 10)  # returns, does not hang
    newest = await store.last_position()
    assert await store.changes(MessageFilter(), after=newest, limit=10) == []


async def test_one_change_stream_serves_every_wake_up_of_the_hub(
    replset: MockServer, stores: Callable[..., Any]
) -> None:
    """The hub's pattern (last_position, then wait and read after its position) reads one
    long-lived stream; a client resuming elsewhere moves it, a driver error reopens it from
    its token, and no change is skipped or repeated."""
    writer, hub = await stores(replset), await stores(replset)
    feed = hub._feed
    assert isinstance(feed, StreamFeed)
    position = await hub.last_position()
    opened = feed.opened
    seen = []
    for index in range(20):
        await writer.commit([model.with_event_id(report(f"m-{index}"))])
        await hub.wait_for_changes(position, 5)
        found = await hub.changes(MessageFilter(), after=position, limit=500)
        seen += [change.report.message_id for change in found]
        position = found[-1].position if found else position
    assert seen == [f"m-{index}" for index in range(20)]
    assert feed.opened == opened  # no stream opened after the first
    replay = await hub.changes(MessageFilter(), after=None, limit=5)  # a client resuming
    assert [change.report.message_id for change in replay] == [f"m-{i}" for i in range(5)]
    await writer.commit([model.with_event_id(report("after"))])
    replset.fail_once("events", "getMore")
    with pytest.raises(StoreUnavailable):
        await hub.changes(MessageFilter(), after=position, limit=10)
    found = await hub.changes(MessageFilter(), after=position, limit=10)
    assert [change.report.message_id for change in found] == ["after"]
    assert feed.opened == opened + 3  # moved for the replay, back, and reopened after the error


async def test_the_change_hub_follows_one_stream_through_its_wake_ups(
    replset: MockServer, stores: Callable[..., Any]
) -> None:
    """statusd's own change hub, with a live Watch, woken by its own commits, by the other
    replica's (through the stream) and by its poll: one stream serves it all."""
    local, other = await stores(replset), await stores(replset)
    hub = ChangeHub(local, poll_seconds=0.05)
    await hub.start()
    feed = local._feed
    assert isinstance(feed, StreamFeed)
    opened = feed.opened
    seen: list[str] = []
    done = asyncio.Event()

    async def send(change: Change | None, position: str | None) -> None:
        if change is not None:
            seen.append(change.report.message_id)
            if len(seen) == 20:
                done.set()

    watching = asyncio.create_task(hub.watch(MessageFilter(), send, heartbeat=5))
    await asyncio.sleep(0.1)
    for index in range(10):
        await local.commit([model.with_event_id(report(f"local-{index}"))])
        hub.notify()
        await other.commit([model.with_event_id(report(f"other-{index}"))])
        await asyncio.sleep(0.02)
    await asyncio.wait_for(done.wait(), 10)
    watching.cancel()
    await hub.stop()
    expected = [f"{side}-{index}" for index in range(10) for side in ("local", "other")]
    assert seen == expected
    assert feed.opened == opened
    assert hub.reads > 1  # several wake-ups, each read from the same stream

"""What only the MongoDB store has: round trips per batch, interrupted commits, Watch after a
failed commit, counting markers, indexes, write concern, outages. Over mongomock through the
async adapter, as a standalone server and as a replica set with the adapter's emulated change
stream (the contract every store shares is in test_contract.py; the change stream in
test_mongo_stream.py). Covers statusd/storage/mongo.py, mongo_commit.py, mongo_changes.py and
mongo_docs.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import ReadPreference, WriteConcern

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter
from statusd.storage import mongo_docs
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    MessageFilter,
    StoreUnavailable,
)
from statusd.storage.mongo import MongoStore, mongo_client
from statusd.storage.mongo_commit import (
    MARKER_HORIZON,
    _guarded_updates,
    now_micros,
    registration_update,
    sweep_markers,
)
from tests.helpers.mongo_faults import COMMIT_STEPS, STEP_DOWN, FaultClient, FaultPlan
from tests.helpers.mongomock_async import MockServer
from tests.helpers.reports import random_reports, registered, report
from tests.helpers.stores import assert_in_the_fold

DELIVERED = pb.DELIVERY_STATUS_DELIVERED


@pytest.fixture(params=["standalone", "replset"])
def server(request: pytest.FixtureRequest) -> MockServer:
    return MockServer(replica_set=request.param == "replset")


async def test_a_batch_takes_the_same_few_requests_whatever_its_size(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    store = await stores(server)
    counts = []
    for size, seed in ((3, 1), (300, 2)):
        server.calls.clear()
        reports = random_reports(seed, size, messages=size // 3)
        await store.commit(reports + reports[:2])  # two duplicates inside the batch
        counts.append(dict(server.calls))
    assert counts[0] == counts[1]
    expected = {
        ("events", "insert_many"): 1,  # the history
        ("messages", "bulk_write"): 2,  # create the messages; apply the reports
        ("events", "bulk_write"): 1,  # mark the events applied
        ("messages", "find"): 1,  # beside it, the receipts of the finals that became current
    }
    if not server.replica_set:
        expected[("meta", "find_one_and_update")] = 1  # reserves the batch's change numbers
    assert counts[0] == expected
    server.calls.clear()
    again = random_reports(2, 300, messages=100)
    assert set(await store.commit(again)) == {DUPLICATE}
    # one read of the stored duplicates, which are all applied: nothing to write
    assert dict(server.calls) == {
        ("events", "insert_many"): 1,
        ("messages", "bulk_write"): 1,
        ("events", "find"): 1,
    }


CUTS = [
    ("events", "insert_many", 0, 0),
    ("events", "insert_many", 0, 4),
    ("messages", "bulk_write", 0, 0),  # the skeleton upserts
    ("messages", "bulk_write", 0, 2),
    ("events", "find", 0, 0),  # reading the stored duplicates
    ("messages", "bulk_write", 1, 0),  # applying the reports
    ("messages", "bulk_write", 1, 1),
    ("messages", "bulk_write", 1, 7),
    ("messages", "bulk_write", 1, 20),
    ("quarantine", "insert_many", 0, 0),
]


@pytest.mark.parametrize("cut", CUTS)
async def test_an_interrupted_commit_is_healed_by_its_retry_on_another_replica(
    server: MockServer, stores: Callable[..., Any], cut: tuple[str, str, int, int]
) -> None:
    """Whatever request of a commit fails, and however much of it went through, the retry
    (here by another replica) ends in the fold with exact counts and a complete history."""
    collection, method, skip, after = cut
    first, second = await stores(server), await stores(server)
    earlier = random_reports(1, 12)
    await first.commit(earlier)
    batch = random_reports(2, 16) + earlier[:5]
    quarantined = [pb.QuarantinedItem(provider="infobip", reason="no status", raw="{}")]
    server.fail_once(collection, method, skip=skip, after=after)
    with pytest.raises(StoreUnavailable):
        await first.commit(batch, quarantined)
    outcomes = await second.commit(batch, quarantined)
    new = len({report.event_id for report in batch} - {report.event_id for report in earlier})
    assert outcomes.count(STORED) + outcomes.count(STALE) <= new
    assert len(outcomes) == len(batch)
    await assert_in_the_fold(second, earlier + batch)
    await assert_in_the_fold(first, earlier + batch)
    changes = await second.changes(MessageFilter(), after=None, limit=100)
    assert sorted(change.report.event_id for change in changes) == sorted(
        {report.event_id for report in earlier + batch}
    )


async def test_a_failed_bulk_write_fails_only_its_batch(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    store = await stores(server)
    committer = GroupCommitter(store)
    async with committer:
        alone = asyncio.create_task(committer.submit([model.with_event_id(report("alone"))]))
        for _ in range(3):
            await asyncio.sleep(0)  # the first batch is now in flight
        server.fail_once("messages", "bulk_write", skip=2)  # the second batch's apply step
        doomed = [
            asyncio.create_task(committer.submit([model.with_event_id(report(f"d-{i}"))]))
            for i in range(5)
        ]
        assert await alone == [STORED]
        for task in doomed:
            with pytest.raises(StoreUnavailable):
                await task
        retried = [model.with_event_id(report(f"d-{i}")) for i in range(5)]
        assert await committer.submit(retried) == [DUPLICATE] * 5  # the events were in
    assert committer.commits == 2
    for index in range(5):
        found = await store.get(pb.MessageKey(provider="infobip", message_id=f"d-{index}"))
        assert found is not None
        assert found.report_count == 1


async def test_watch_shows_a_report_only_once_its_message_reflects_it(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    writer = await stores(server)
    # another replica on a replica set; a standalone server's positions are per process
    watcher = await stores(server) if server.replica_set else writer
    start = await watcher.last_position()
    sent, delivered = (
        model.with_event_id(report(status=pb.DELIVERY_STATUS_SENT, event_offset=1)),
        model.with_event_id(report(status=DELIVERED, event_offset=2)),
    )
    await writer.commit([sent])
    server.fail_once("messages", "bulk_write", skip=1)  # the writer dies before applying
    with pytest.raises(StoreUnavailable):
        await writer.commit([delivered])
    behind = await watcher.get(pb.MessageKey(provider="infobip", message_id="m-1"))
    assert behind is not None
    assert behind.status == pb.DELIVERY_STATUS_SENT
    changes = await watcher.changes(MessageFilter(), after=start, limit=10)
    assert [change.message_status.status for change in changes] == [pb.DELIVERY_STATUS_SENT]
    assert await writer.commit([delivered]) == [DUPLICATE]  # the retry applies it
    changes = await watcher.changes(MessageFilter(), after=start, limit=10)
    assert [change.report.status for change in changes] == [pb.DELIVERY_STATUS_SENT, DELIVERED]
    assert changes[-1].message_status.status == DELIVERED
    assert changes[-1].message_status.report_count == 2


async def test_indexes_cover_every_list_filter_and_follow_the_retention(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    await stores(server, retention_days=90)
    await stores(server, retention_days=90)  # idempotent
    await stores(server, retention_days=30)  # a changed retention adjusts the TTL indexes
    database = server.backend.get_database("dlrhub")
    for collection in ("messages", "events", "quarantine"):
        indexes = database.get_collection(collection).index_information()
        wanted = {name for target, name, _, _ in mongo_docs.INDEXES if target == collection}
        assert wanted <= set(indexes)
        assert indexes["retention"]["expireAfterSeconds"] == 30 * 86_400
    messages = database.get_collection("messages").index_information()
    filtered = {key for index in messages.values() for key, _ in index["key"]}
    assert {"provider", "account", "status", "recipient", "client_ref"} <= filtered
    assert {"parent_message_id", "updated", "first_seen"} <= filtered


def test_writes_are_majority_journaled_and_reads_go_to_the_primary() -> None:
    store = MongoStore(mongo_client("mongodb://127.0.0.1:1/"), database="any")
    assert store.db.write_concern == WriteConcern(w="majority", j=True)
    assert store.db.read_concern.level == "majority"
    assert store.db.read_preference == ReadPreference.PRIMARY


async def test_an_unreachable_server_makes_the_store_unavailable(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    server.down = True
    store = MongoStore(server.client())
    with pytest.raises(StoreUnavailable, match="mongodb open failed: ServerSelectionTimeout"):
        await store.open()
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.commit([model.with_event_id(report())])
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.ping()
    server.down = False
    opened = await stores(server)
    server.down = True
    with pytest.raises(StoreUnavailable, match="commit failed"):
        await opened.commit([model.with_event_id(report())])
    with pytest.raises(StoreUnavailable):
        await opened.ping()
    server.down = False
    assert await opened.commit([model.with_event_id(report())]) == [STORED]


async def test_quarantine_ids_from_elsewhere_are_ignored(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    store = await stores(server)
    await store.commit([], [pb.QuarantinedItem(provider="plivo", reason="bad", raw="x")])
    assert await store.release(["nope", "42"]) == 0
    kept = await store.quarantined(after="not-an-id", limit=5)
    assert [item.reason for item in kept] == ["bad"]


async def test_counting_markers_stay_until_their_event_is_applied_and_old(
    server: MockServer, stores: Callable[..., Any]
) -> None:
    store = await stores(server)
    messages = server.backend.get_database("dlrhub").messages
    sent = model.with_event_id(report(status=pb.DELIVERY_STATUS_SENT, event_offset=1))
    delivered = model.with_event_id(report(status=DELIVERED, event_offset=2))
    await store.commit([sent])
    server.fail_once("events", "bulk_write")  # counted, but not marked applied
    with pytest.raises(StoreUnavailable):
        await store.commit([delivered])
    later = mongo_docs.as_datetime(now_micros() + int(MARKER_HORIZON.total_seconds() * 2_000_000))
    assert await sweep_markers(store._messages, store._events, later) == 1
    left = messages.find_one({})["counting"]
    assert [marker["d"] for marker in left] == [mongo_docs.applied_digest(delivered.event_id)]
    assert await store.commit([delivered]) == [DUPLICATE]  # the retry: counted once
    status = await store.get(pb.MessageKey(provider="infobip", message_id="m-1"))
    assert status is not None
    assert (status.status, status.report_count) == (DELIVERED, 2)
    now = mongo_docs.as_datetime(now_micros())
    await sweep_markers(store._messages, store._events, now)
    assert len(messages.find_one({})["counting"]) == 1  # younger than the horizon: kept
    await sweep_markers(store._messages, store._events, later)
    assert messages.find_one({})["counting"] == []


def test_no_update_sets_a_field_twice() -> None:
    """MongoDB refuses an update that names one path in two operators ($set and
    $setOnInsert): mongomock does not, so each update's paths are checked here."""
    entries = [
        model.with_event_id(report(status=pb.DELIVERY_STATUS_DELIVERED, error_code="20")),
        registered(),
        model.timeout_entry(("infobip", "", "m-1"), 1, 2),
    ]
    for entry in entries:
        updates = _guarded_updates("id", entry, 1, mongo_docs.as_datetime(1))
        updates.append(registration_update("id", registered(), 1))
        for update in updates:
            document = update._doc
            assert isinstance(document, dict)  # an update document, not a pipeline
            paths = [key for part in document.values() for key in part]
            assert len(paths) == len(set(paths)), update


def test_the_sweeper_reads_the_deadline_index() -> None:
    """The deadline query names the partial index's own terms, so the index serves it."""
    (index,) = [i for i in mongo_docs.INDEXES if i[1] == "report_deadline"]
    assert index[2] == [("report_deadline", 1)]
    assert index[3] == {"partialFilterExpression": mongo_docs.AWAITING}
    assert mongo_docs.AWAITING == {"report_deadline": {"$gte": 0}, "order_key": {"$lt": "1"}}


async def test_an_empty_standalone_store_names_a_position_that_stays_valid() -> None:
    """A resume token issued before the first commit (no change stream, nothing numbered)
    names a real position: after a failed commit, its retry and a restart, changes after it
    are exactly the commit's, and the hub never hands out an empty token."""
    server = MockServer(replica_set=False)
    plan = FaultPlan()
    store = MongoStore(FaultClient(server.client(), plan).typed())
    await store.open()
    start = await store.last_position()
    assert start  # neither None nor "": Watch refuses a token that names no position
    assert await store.changes(MessageFilter(), after=start, limit=10) == []
    reserve = next(step for step in COMMIT_STEPS if step.name == "reserve numbers")
    plan.arm(reserve, STEP_DOWN)
    sent = model.with_event_id(report(status=pb.DELIVERY_STATUS_SENT))
    with pytest.raises(StoreUnavailable):
        await store.commit([sent])
    assert await store.commit([sent]) == [DUPLICATE]  # the retry applies it
    await store.close()
    restarted = MongoStore(server.client())
    await restarted.open()
    try:
        changes = await restarted.changes(MessageFilter(), after=start, limit=10)
        assert [change.report.event_id for change in changes] == [sent.event_id]
        assert await restarted.last_position() != start
    finally:
        await restarted.close()

"""The MongoDB store under the fault double (:mod:`tests.helpers.mongo_faults`): every fault
at every request of a group commit, on a replica set and on a standalone server.

For each cell of the matrix (fault x commit step): a commit fails there (the store raises
StoreUnavailable, so the gateway answers 503 and the provider retries); the retry, by another
statusd replica on a replica set, converges to the state of the same commits without any
fault, and nothing is counted twice (report_count, history, quarantine, changes). Run with
``-s`` to see the matrix.
"""

from __future__ import annotations

from typing import Any

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage import mongo_commit, mongo_docs
from statusd.storage.base import DUPLICATE, MessageFilter, StoreUnavailable
from statusd.storage.mongo import MongoStore
from tests.helpers.mongo_faults import COMMIT_STEPS, FAULTS, FaultClient, FaultPlan, applies
from tests.helpers.mongomock_async import MockServer
from tests.helpers.reports import random_reports, report
from tests.helpers.stores import assert_in_the_fold

EARLIER = random_reports(1, 12)
BATCH = random_reports(2, 16) + EARLIER[:5]  # five reports already stored: duplicates
QUARANTINED = [
    pb.QuarantinedItem(provider="infobip", reason="no status", raw="{}", request_id="r-1"),
    pb.QuarantinedItem(provider="infobip", reason="no status", raw="{}", request_id="r-1"),
    pb.QuarantinedItem(provider="plivo", reason="bad JSON", raw="{", request_id="r-2"),
]


async def _open(server: MockServer, plan: FaultPlan) -> MongoStore:
    store = MongoStore(FaultClient(server.client(), plan).typed())
    await store.open()
    return store


async def _state(store: MongoStore) -> dict[str, Any]:
    """Everything a client can read, without the commit times (which differ per run)."""
    keys = {(r.provider, r.account, r.message_id) for r in EARLIER + BATCH}
    wanted = [pb.MessageKey(provider=p, account=a, message_id=m) for p, a, m in sorted(keys)]
    statuses = await store.batch_get(wanted, full=True)
    for status in statuses:
        status.ClearField("first_seen_time")
        status.ClearField("update_time")
    quarantine = await store.quarantined(after=None, limit=100)
    changes = await store.changes(MessageFilter(), after=None, limit=1000)
    return {
        "statuses": [status.SerializeToString(deterministic=True) for status in statuses],
        "quarantine": sorted((item.provider, item.reason, item.raw) for item in quarantine),
        "changes": sorted(change.report.event_id for change in changes),
    }


async def _clean_state(replica_set: bool) -> dict[str, Any]:
    server = MockServer(replica_set=replica_set)
    store = await _open(server, FaultPlan())
    await store.commit(EARLIER)
    await store.commit(BATCH, QUARANTINED)
    state = await _state(store)
    await store.close()
    return state


async def _cell(replica_set: bool, step: Any, fault: str, clean: dict[str, Any]) -> str:
    """One cell: fail the step with the fault, retry, check; returns what happened."""
    server = MockServer(replica_set=replica_set)
    plan = FaultPlan()
    first = await _open(server, plan)
    await first.commit(EARLIER)
    database = server.backend.get_database("dlrhub")
    plan.arm(step, fault)
    with pytest.raises(StoreUnavailable):
        await first.commit(BATCH, QUARANTINED)
    assert plan.fired == [(step.name, fault)], plan.fired
    left = (
        database.events.count_documents({}) - len(EARLIER),
        database.events.count_documents({"applied": True}) - len(EARLIER),
        database.quarantine.count_documents({}),
    )
    # the retry: by another replica on a replica set (one writer on a standalone server)
    second = await _open(server, FaultPlan()) if replica_set else first
    await second.commit(BATCH, QUARANTINED)
    assert await _state(second) == clean, f"{fault} at {step.name}: not the clean state"
    await assert_in_the_fold(second, EARLIER + BATCH)
    assert database.events.count_documents({"applied": False}) == 0
    assert set(await second.commit(BATCH, QUARANTINED)) == {DUPLICATE}  # delivered again
    assert await _state(second) == clean, f"{fault} at {step.name}: counted twice"
    for store in {first, second}:
        await store.close()
    events, applied, quarantined = left
    return f"503; left {events} ev/{applied} applied/{quarantined} q; retry = clean"


@pytest.mark.parametrize("topology", ["replica set", "standalone"])
async def test_every_fault_at_every_commit_step_converges_on_retry(topology: str) -> None:
    replica_set = topology == "replica set"
    clean = await _clean_state(replica_set)
    steps = [step for step in COMMIT_STEPS if not (step.standalone_only and replica_set)]
    rows = []
    for step in steps:
        cells = []
        for fault in FAULTS:
            if applies(fault, step):
                cells.append(await _cell(replica_set, step, fault, clean))
            else:
                cells.append("n/a (a read has no write concern)")
        rows.append((step.name, cells))
    width = max(len(cell) for _, cells in rows for cell in cells)
    print(
        f"\n\nfault x commit step -> outcome ({topology}, {len(EARLIER)} reports stored, "
        f"then a batch of {len(BATCH)} with {len(QUARANTINED)} quarantined items)"
    )
    print(f"{'step':<18} | " + " | ".join(f"{fault:<{width}}" for fault in FAULTS))
    for name, cells in rows:
        print(f"{name:<18} | " + " | ".join(f"{cell:<{width}}" for cell in cells))
    assert len(rows) == len(steps)


async def test_a_message_document_stays_bounded_however_many_reports_it_receives() -> None:
    """500 distinct reports for one message under a 16 KiB document limit: an array entry
    per report (42 bytes each) would pass the limit at about 370; the counting markers stay
    at most MAX_MARKERS, and the purge removes them once their events are applied."""
    server = MockServer(max_bson_size=16 * 1024)
    store = await _open(server, FaultPlan())
    messages = server.backend.get_database("dlrhub").messages
    for batch in range(5):
        await store.commit(
            [
                model.with_event_id(report(provider_status=f"s-{batch}-{n}", event_offset=n))
                for n in range(100)
            ]
        )
    status = await store.get(pb.MessageKey(provider="infobip", message_id="m-1"))
    assert status is not None
    assert status.report_count == 500
    document = messages.find_one({})
    assert len(document["counting"]) == mongo_docs.MAX_MARKERS
    later = mongo_commit.now_micros() + int(mongo_commit.MARKER_HORIZON.total_seconds() * 2e6)
    swept = await mongo_commit.sweep_markers(
        store._messages, store._events, mongo_docs.as_datetime(later)
    )
    assert swept == 1
    assert messages.find_one({})["counting"] == []
    await store.close()

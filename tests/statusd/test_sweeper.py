"""The report-timeout sweeper under a fake clock, on a real SQLite file and on MongoStore over
mongomock: nothing happens before a deadline, every message past it becomes NO_REPORT in
batches, exactly once, messages with a final report are left alone, the counter counts each
timeout once, and a store that fails one sweep is swept again on the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter
from statusd.storage.base import Due, Store, StoreUnavailable
from statusd.sweeper import ReportSweeper
from tests.helpers.reports import BASE_MICROS, filled, key, registered, report
from tests.helpers.stores import Backend

SECOND = 1_000_000
DEADLINE = BASE_MICROS + 3600 * SECOND
NO_REPORT = pb.DELIVERY_STATUS_NO_REPORT


class Clock:
    """A fake clock in microseconds."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=["sqlite", "mongomock-replset"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = Backend(request.param, tmp_path).store()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


def timeouts_counted(provider: str) -> float:
    value = REGISTRY.get_sample_value("dlrhub_report_timeouts_total", {"provider": provider})
    return value or 0.0


async def test_messages_past_their_deadline_become_no_report_once(store: Store) -> None:
    ids = [f"m-{index}" for index in range(7)]
    (delivered,) = filled(report("m-0", status=pb.DELIVERY_STATUS_DELIVERED, provider="plivo"))
    later = registered("late", timeout_seconds=7200)
    await store.commit([*(registered(m, provider="plivo") for m in ids), delivered, later])
    clock = Clock(DEADLINE - 1)
    async with GroupCommitter(store) as committer:
        sweeper = ReportSweeper(store, committer, interval=0.01, batch=2, clock=clock)
        before = timeouts_counted("plivo")
        assert await sweeper.sweep() == 0
        clock.now = DEADLINE
        assert await sweeper.sweep() == 6  # in batches of 2; m-0 has its receipt
        assert await sweeper.sweep() == 0
        assert timeouts_counted("plivo") - before == 6
    for message_id in ids[1:]:
        found = await store.get(key(message_id, provider="plivo"), full=True)
        assert found is not None
        assert (found.status, found.report_count) == (NO_REPORT, 0)
        assert model_time(found.latest_report.event_time) == DEADLINE
    found = await store.get(key("m-0", provider="plivo"))
    assert found is not None
    assert found.status == pb.DELIVERY_STATUS_DELIVERED
    waiting = await store.get(key("late"))
    assert waiting is not None
    assert waiting.status == pb.DELIVERY_STATUS_ACCEPTED


def model_time(stamp: object) -> int:
    return model.micros(stamp)


class FailingOnce:
    """The part of a store the sweeper reads, failing its first deadline query."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failed = False

    async def due_timeouts(self, now_micros: int, limit: int) -> list[Due]:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("mongodb read failed: a step-down")
        return await self.inner.due_timeouts(now_micros, limit)


async def test_run_sweeps_again_after_a_failed_sweep(store: Store) -> None:
    await store.commit([registered("m-1")])
    flaky = FailingOnce(store)
    async with GroupCommitter(store) as committer:
        sweeper = ReportSweeper(flaky, committer, interval=0.01, clock=Clock(DEADLINE))  # type: ignore[arg-type]
        ready = asyncio.Event()
        task = asyncio.create_task(sweeper.run(ready))
        await asyncio.sleep(0.05)
        assert (await store.get(key())).status == pb.DELIVERY_STATUS_ACCEPTED  # type: ignore[union-attr]
        ready.set()
        for _ in range(200):
            found = await store.get(key())
            if found is not None and found.status == NO_REPORT:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert flaky.failed
    assert (await store.get(key())).status == NO_REPORT  # type: ignore[union-attr]

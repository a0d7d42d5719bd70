"""Group commit: many callers, few commits, each caller its own answer, failures contained.

Every test runs on the SQLite store and on the MongoDB store over mongomock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter
from statusd.storage.base import DUPLICATE, STORED, Outcome, StoreUnavailable
from statusd.storage.mongo import MongoStore
from statusd.storage.sqlite import SqliteStore
from tests.helpers.reports import report
from tests.helpers.stores import Backend


class Faults:
    """Which commits fail, and a gate that holds commits until released."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.fail_calls: set[int] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def before_commit(self, reports: Sequence[pb.DeliveryReport]) -> None:
        self.calls.append(len(reports))
        number = len(self.calls)
        await self.gate.wait()
        if number in self.fail_calls:
            raise StoreUnavailable("injected failure")


class FlakySqlite(SqliteStore):
    """A real SQLite store whose chosen commits fail, and which holds commits until released."""

    faults = Faults()

    async def commit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        await self.faults.before_commit(reports)
        return await super().commit(reports, quarantined)


class FlakyMongo(MongoStore):
    """The MongoDB store over mongomock, with the same faults."""

    faults = Faults()

    async def commit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        await self.faults.before_commit(reports)
        return await super().commit(reports, quarantined)


FlakyStore = FlakySqlite | FlakyMongo


@pytest.fixture(params=["sqlite", "mongomock"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FlakyStore]:
    flaky = FlakySqlite if request.param == "sqlite" else FlakyMongo
    made = Backend(request.param, tmp_path).store(flaky)
    assert isinstance(made, FlakySqlite | FlakyMongo)
    made.faults = Faults()
    await made.open()
    yield made
    await made.close()


def one(message_id: str) -> list[pb.DeliveryReport]:
    return [model.with_event_id(report(message_id=message_id))]


async def test_concurrent_callers_share_commits_and_get_their_own_outcomes(
    store: FlakyStore,
) -> None:
    committer = GroupCommitter(store)
    async with committer:
        store.faults.gate.clear()  # hold the first commit so the others pile up behind it
        first = asyncio.create_task(committer.submit(one("first")))
        await asyncio.sleep(0.01)
        others = [asyncio.create_task(committer.submit(one(f"m-{i}"))) for i in range(50)]
        duplicate = asyncio.create_task(committer.submit(one("m-3")))
        await asyncio.sleep(0.01)
        store.faults.gate.set()
        assert await first == [STORED]
        assert [await task for task in others] == [[STORED]] * 50
        assert await duplicate == [DUPLICATE]
    assert len(store.faults.calls) == 2  # 52 callers, two commits
    assert store.faults.calls == [1, 51]


async def test_a_failed_batch_fails_only_its_callers(store: FlakyStore) -> None:
    committer = GroupCommitter(store)
    store.faults.fail_calls = {2}
    async with committer:
        store.faults.gate.clear()
        first = asyncio.create_task(committer.submit(one("a")))
        await asyncio.sleep(0.01)
        doomed = [asyncio.create_task(committer.submit(one(f"b-{i}"))) for i in range(5)]
        await asyncio.sleep(0.01)
        store.faults.gate.set()
        assert await first == [STORED]
        for task in doomed:
            with pytest.raises(StoreUnavailable):
                await task
        assert await committer.submit(one("c")) == [STORED]
        assert await committer.submit(one("b-0")) == [STORED]  # the retry succeeds
    assert await store.get(pb.MessageKey(provider="infobip", message_id="b-1")) is None


async def test_batches_respect_the_report_limit(store: FlakyStore) -> None:
    committer = GroupCommitter(store, max_reports=10)
    async with committer:
        store.faults.gate.clear()
        tasks = [asyncio.create_task(committer.submit(one(f"m-{i}"))) for i in range(25)]
        await asyncio.sleep(0.01)
        store.faults.gate.set()
        await asyncio.gather(*tasks)
    assert max(store.faults.calls) <= 10
    assert sum(store.faults.calls) == 25


async def test_stop_commits_what_is_pending_then_refuses(store: FlakyStore) -> None:
    committer = GroupCommitter(store)
    committer.start()
    pending = asyncio.create_task(committer.submit(one("last")))
    await asyncio.sleep(0)
    await committer.stop()
    assert await pending == [STORED]
    with pytest.raises(StoreUnavailable):
        await committer.submit(one("late"))


async def test_a_caller_that_goes_away_does_not_undo_the_commit(store: FlakyStore) -> None:
    committer = GroupCommitter(store)
    async with committer:
        store.faults.gate.clear()
        task = asyncio.create_task(committer.submit(one("gone")))
        await asyncio.sleep(0.01)
        task.cancel()
        store.faults.gate.set()
        await asyncio.sleep(0.05)
    assert await store.get(pb.MessageKey(provider="infobip", message_id="gone")) is not None

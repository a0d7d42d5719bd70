"""Group commit: many callers, few commits, each caller its own answer, failures contained.

Every test runs on the SQLite store and on the MongoDB store over mongomock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.committer import GroupCommitter, Quiet
from statusd.storage.base import DUPLICATE, STORED, Committed, Receipt, Store, StoreUnavailable
from tests.helpers.reports import BASE_MICROS, registered, report
from tests.helpers.stores import Backend


class Faults:
    """Wraps a real store's commit: chosen commits fail, and a gate holds commits until it is
    set again."""

    def __init__(self, store: Store) -> None:
        self.calls: list[int] = []
        self.fail_calls: set[int] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        inner = store.commit_batch

        async def commit_batch(
            reports: Sequence[pb.DeliveryReport], quarantined: Sequence[pb.QuarantinedItem] = ()
        ) -> Committed:
            self.calls.append(len(reports))
            number = len(self.calls)
            await self.gate.wait()
            if number in self.fail_calls:
                raise StoreUnavailable("injected failure")
            return await inner(reports, quarantined)

        setattr(store, "commit_batch", commit_batch)  # noqa: B010 - an instance attribute, on purpose


@pytest.fixture(params=["sqlite", "mongomock"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = Backend(request.param, tmp_path).store()
    await made.open()
    yield made
    await made.close()


@pytest.fixture
def faults(store: Store) -> Faults:
    return Faults(store)


def one(message_id: str) -> list[pb.DeliveryReport]:
    return [model.with_event_id(report(message_id=message_id))]


async def test_concurrent_callers_share_commits_and_get_their_own_outcomes(
    store: Store, faults: Faults
) -> None:
    committer = GroupCommitter(store)
    async with committer:
        faults.gate.clear()  # hold the first commit so the others pile up behind it
        first = asyncio.create_task(committer.submit(one("first")))
        await asyncio.sleep(0.01)
        others = [asyncio.create_task(committer.submit(one(f"m-{i}"))) for i in range(50)]
        duplicate = asyncio.create_task(committer.submit(one("m-3")))
        await asyncio.sleep(0.01)
        faults.gate.set()
        assert await first == [STORED]
        assert [await task for task in others] == [[STORED]] * 50
        assert await duplicate == [DUPLICATE]
    assert len(faults.calls) == 2  # 52 callers, two commits
    assert faults.calls == [1, 51]


async def test_a_failed_batch_fails_only_its_callers(store: Store, faults: Faults) -> None:
    committer = GroupCommitter(store)
    faults.fail_calls = {2}
    async with committer:
        faults.gate.clear()
        first = asyncio.create_task(committer.submit(one("a")))
        await asyncio.sleep(0.01)
        doomed = [asyncio.create_task(committer.submit(one(f"b-{i}"))) for i in range(5)]
        await asyncio.sleep(0.01)
        faults.gate.set()
        assert await first == [STORED]
        for task in doomed:
            with pytest.raises(StoreUnavailable):
                await task
        assert await committer.submit(one("c")) == [STORED]
        assert await committer.submit(one("b-0")) == [STORED]  # the retry succeeds
    assert await store.get(pb.MessageKey(provider="infobip", message_id="b-1")) is None


async def test_batches_respect_the_report_limit(store: Store, faults: Faults) -> None:
    committer = GroupCommitter(store, max_reports=10)
    async with committer:
        faults.gate.clear()
        tasks = [asyncio.create_task(committer.submit(one(f"m-{i}"))) for i in range(25)]
        await asyncio.sleep(0.01)
        faults.gate.set()
        await asyncio.gather(*tasks)
    assert max(faults.calls) <= 10
    assert sum(faults.calls) == 25


async def test_stop_commits_what_is_pending_then_refuses(store: Store, faults: Faults) -> None:
    committer = GroupCommitter(store)
    committer.start()
    pending = asyncio.create_task(committer.submit(one("last")))
    await asyncio.sleep(0)
    await committer.stop()
    assert await pending == [STORED]
    with pytest.raises(StoreUnavailable):
        await committer.submit(one("late"))


async def test_a_caller_that_goes_away_does_not_undo_the_commit(
    store: Store, faults: Faults
) -> None:
    committer = GroupCommitter(store)
    async with committer:
        faults.gate.clear()
        task = asyncio.create_task(committer.submit(one("gone")))
        await asyncio.sleep(0.01)
        task.cancel()
        faults.gate.set()
        await asyncio.sleep(0.05)
    assert await store.get(pb.MessageKey(provider="infobip", message_id="gone")) is not None


async def test_consecutive_failures_are_counted_and_reset(store: Store) -> None:
    faults = Faults(store)
    faults.fail_calls = {1, 2, 4}
    seen: list[int] = []
    async with GroupCommitter(store, on_failure=seen.append) as committer:
        for index in range(5):
            with contextlib.suppress(StoreUnavailable):
                await committer.submit([model.with_event_id(report(f"f-{index}"))])
        assert seen == [1, 2, 1]  # the third commit succeeded and reset the count
        assert committer.consecutive_failures == 0


async def test_receipts_go_to_on_receipts_after_each_commit_that_has_any(store: Store) -> None:
    seen: list[list[Receipt]] = []
    async with GroupCommitter(store, on_receipts=seen.append) as committer:
        await committer.submit([registered("r-1", submit_offset=-5)])
        await committer.submit(one("unregistered"))
        assert seen == []
        assert await committer.submit(one("r-1")) == [STORED]
        assert seen == [[Receipt("infobip", "CH", BASE_MICROS - 5_000_000, BASE_MICROS)]]


async def test_quiet_while_nothing_is_pending_or_committing(store: Store) -> None:
    faults = Faults(store)
    async with GroupCommitter(store) as committer:
        assert committer.quiet.is_set()
        faults.gate.clear()
        pending = asyncio.create_task(committer.submit([model.with_event_id(report("q"))]))
        await asyncio.sleep(0.01)
        assert not committer.quiet.is_set()  # the commit is in flight
        faults.gate.set()
        await pending
        await asyncio.sleep(0)
        assert committer.quiet.is_set()
        # How long it was not quiet is counted, and stops counting once it is.
        busy = committer.quiet.busy_seconds()
        assert busy >= 0.01
        await asyncio.sleep(0.02)
        assert committer.quiet.busy_seconds() == busy


async def test_quiet_counts_a_spell_under_way() -> None:
    quiet = Quiet()
    assert quiet.is_set()
    assert quiet.busy_seconds() == 0
    quiet.clear()
    quiet.clear()  # a second clear does not restart the spell
    await asyncio.sleep(0.02)
    assert 0.02 <= quiet.busy_seconds() < 1
    quiet.set()
    quiet.set()
    spent = quiet.busy_seconds()
    await asyncio.sleep(0.01)
    assert quiet.busy_seconds() == spent

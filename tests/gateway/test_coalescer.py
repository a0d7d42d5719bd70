"""Coalescing: concurrent webhooks share calls, each gets exactly its own answer, and one bad
request cannot fail its neighbours."""

from __future__ import annotations

import asyncio

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway.coalescer import Coalescer
from gateway.errors import Malformed, Overloaded, UpstreamUnavailable

STORED = ingest_pb.INGEST_OUTCOME_STORED
Answer = ingest_pb.IngestReportsResponse
DUPLICATE = ingest_pb.INGEST_OUTCOME_DUPLICATE


class FakeStatusd:
    """Answers like statusd: a report id seen before is a duplicate; ids starting with "bad"
    make the whole call INVALID_ARGUMENT; ``down`` makes calls UNAVAILABLE. Calls wait for
    ``gate`` so that others can gather meanwhile."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.seen: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    async def __call__(
        self, reports: list[pb.DeliveryReport], quarantined: list[pb.QuarantinedItem]
    ) -> ingest_pb.IngestReportsResponse:
        self.calls.append(len(reports))
        await self.gate.wait()
        if self.down:
            raise UpstreamUnavailable("statusd did not confirm the commit (UNAVAILABLE)")
        if any(report.message_id.startswith("bad") for report in reports):
            raise Malformed("report rejected by statusd")
        outcomes = []
        for report in reports:
            outcomes.append(DUPLICATE if report.message_id in self.seen else STORED)
            self.seen.add(report.message_id)
        return ingest_pb.IngestReportsResponse(outcomes=outcomes, quarantined=len(quarantined))


def reports(*ids: str) -> list[pb.DeliveryReport]:
    return [pb.DeliveryReport(provider="infobip", message_id=i) for i in ids]


@pytest.mark.parametrize("given_loop", [False, True])
async def test_a_lone_webhook_goes_at_once(given_loop: bool) -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, loop=asyncio.get_running_loop() if given_loop else None)
    answer = await coalescer.submit(reports("a", "b"), [pb.QuarantinedItem(reason="x")])
    assert (answer.stored, answer.duplicates, answer.quarantined) == (2, 0, 1)
    assert statusd.calls == [2]


async def test_concurrent_webhooks_share_calls_and_get_their_own_outcomes() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1)
    statusd.gate.clear()
    first = asyncio.create_task(coalescer.submit(reports("first")))
    await asyncio.sleep(0)
    others = [asyncio.create_task(coalescer.submit(reports(f"m-{i}", "shared"))) for i in range(20)]
    await asyncio.sleep(0)
    statusd.gate.set()
    assert (await first).stored == 1
    answers = [await task for task in others]
    assert statusd.calls == [1, 40]  # 21 webhooks, two calls
    assert answers[0].stored == 2  # the first to carry "shared" stored it
    assert all((answer.stored, answer.duplicates) == (1, 1) for answer in answers[1:])
    assert all(len(answer.outcomes) == 2 for answer in answers)


async def one_call_out() -> tuple[FakeStatusd, Coalescer, asyncio.Task[Answer]]:
    """A coalescer that may overlap two calls once four reports wait, with one call out (held
    at statusd's gate) carrying the webhook ``first``."""
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=2, overlap_reports=4)
    statusd.gate.clear()
    first = asyncio.create_task(coalescer.submit(reports("first")))
    await asyncio.sleep(0)
    return statusd, coalescer, first


async def test_a_few_waiting_webhooks_wait_for_the_call_out_rather_than_make_another() -> None:
    statusd, coalescer, first = await one_call_out()
    few = [asyncio.create_task(coalescer.submit(reports(f"few-{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    assert statusd.calls == [1]  # three wait: fewer than overlap_reports
    statusd.gate.set()
    await asyncio.gather(first, *few)
    assert statusd.calls == [1, 3]  # they left together when the call returned


async def test_enough_waiting_reports_make_a_second_call_alongside() -> None:
    statusd, coalescer, first = await one_call_out()
    many = [asyncio.create_task(coalescer.submit(reports(f"m-{i}", f"n-{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the second call's task starts
    assert statusd.calls == [1, 4]  # four reports waited: a second call went at once
    late = asyncio.create_task(coalescer.submit(reports(*(f"late-{i}" for i in range(9)))))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert statusd.calls == [1, 4]  # two calls out: the most allowed
    statusd.gate.set()
    answers = await asyncio.gather(first, *many, late)
    assert [answer.stored for answer in answers] == [1, 2, 2, 9]
    assert statusd.calls == [1, 4, 9]
    assert coalescer.queued == 0


async def test_a_webhook_that_leaves_while_waiting_no_longer_counts_towards_a_second_call() -> None:
    statusd, coalescer, first = await one_call_out()
    leaving = asyncio.create_task(coalescer.submit(reports("l-1", "l-2", "l-3")))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    staying = asyncio.create_task(coalescer.submit(reports("s-1")))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert statusd.calls == [1]  # one report waits, not four
    statusd.gate.set()
    assert [(await first).stored, (await staying).stored] == [1, 1]
    assert statusd.calls == [1, 1]


async def test_batches_respect_the_report_limit() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_reports=5, max_in_flight=1)
    statusd.gate.clear()
    tasks = [asyncio.create_task(coalescer.submit(reports(f"m-{i}", f"n-{i}"))) for i in range(6)]
    await asyncio.sleep(0)
    statusd.gate.set()
    await asyncio.gather(*tasks)
    assert max(statusd.calls) <= 5
    assert sum(statusd.calls) == 12


async def test_an_invalid_webhook_fails_alone() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1)
    statusd.gate.clear()
    blocker = asyncio.create_task(coalescer.submit(reports("blocker")))
    await asyncio.sleep(0)
    good = [asyncio.create_task(coalescer.submit(reports(f"good-{i}"))) for i in range(3)]
    bad = asyncio.create_task(coalescer.submit(reports("bad-1")))
    await asyncio.sleep(0)
    statusd.gate.set()
    await blocker
    assert [(await task).stored for task in good] == [1, 1, 1]
    with pytest.raises(Malformed):
        await bad


async def test_an_unavailable_statusd_fails_the_whole_batch() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1)
    statusd.down = True
    tasks = [asyncio.create_task(coalescer.submit(reports(f"m-{i}"))) for i in range(4)]
    for task in tasks:
        with pytest.raises(UpstreamUnavailable):
            await task
    statusd.down = False
    assert (await coalescer.submit(reports("m-0"))).stored == 1  # the retry goes through


async def test_a_webhook_that_goes_away_does_not_disturb_the_others() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1)
    statusd.gate.clear()
    leaving = asyncio.create_task(coalescer.submit(reports("leaving")))
    staying = asyncio.create_task(coalescer.submit(reports("staying")))
    await asyncio.sleep(0)
    leaving.cancel()
    statusd.gate.set()
    assert (await staying).stored == 1
    assert "leaving" in statusd.seen  # its reports were committed all the same


async def test_a_webhook_that_goes_away_while_waiting_takes_its_reports_out() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1)
    statusd.gate.clear()
    out = asyncio.create_task(coalescer.submit(reports("out")))  # goes at once, then waits
    await asyncio.sleep(0)
    leaving = asyncio.create_task(coalescer.submit(reports("leaving-1", "leaving-2")))
    staying = asyncio.create_task(coalescer.submit(reports("staying")))
    await asyncio.sleep(0)
    assert coalescer.queued == 4
    leaving.cancel()
    await asyncio.sleep(0)
    assert coalescer.queued == 2  # "out", in its call, and "staying"
    statusd.gate.set()
    assert [(await out).stored, (await staying).stored] == [1, 1]
    assert statusd.calls == [1, 1]
    assert not statusd.seen & {"leaving-1", "leaving-2"}
    assert coalescer.queued == 0


async def test_a_full_queue_refuses_at_once_and_takes_again_once_drained() -> None:
    statusd = FakeStatusd()
    coalescer = Coalescer(statusd, max_in_flight=1, max_queued=3)
    statusd.gate.clear()
    first = asyncio.create_task(coalescer.submit(reports("a", "b")))
    await asyncio.sleep(0)
    assert not coalescer.full()
    with pytest.raises(Overloaded, match="2 reports are waiting"):
        await coalescer.submit(reports("c", "d"))
    second = asyncio.create_task(coalescer.submit(reports("c")))
    await asyncio.sleep(0)
    assert coalescer.full()
    statusd.gate.set()
    assert [(await first).stored, (await second).stored] == [2, 1]
    assert coalescer.queued == 0
    # Alone, a request larger than the bound still goes (nothing else waits).
    assert (await coalescer.submit(reports("e", "f", "g", "h"))).stored == 4

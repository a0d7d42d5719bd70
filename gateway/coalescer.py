"""Coalescing: concurrent webhooks share one IngestReports call to statusd.

A webhook's reports are :meth:`Coalescer.submit`-ted and its handler waits. When no call is
out, everything pending leaves at once in one call; while one is out, new submissions gather
and leave together when it returns, or in a call of their own alongside it (up to
``max_in_flight`` calls) once at least ``overlap_reports`` of them wait. So a lone webhook
waits for nobody; at a moderate rate one call at a time carries everything that gathered
(each call costs both processes CPU of its own, and statusd commits one batch at a time
anyway); under load several calls overlap, and each gRPC round trip (and each statusd group
commit behind it) carries many webhooks. Every handler still answers only after statusd
confirmed the commit of its own reports, and gets exactly its own outcomes.

The queue is bounded: a submission that would take the reports waiting or out beyond
``max_queued`` is refused at once with :class:`~gateway.errors.Overloaded` (503), unless
nothing else waits, so a lone request of any allowed size still goes. A handler that goes
away (the client left, the body deadline) takes its reports out of the queue if they have
not left yet.

A batch that statusd refuses as invalid is split and sent again one webhook at a time, so
one bad request cannot fail its neighbours; any other failure fails the batch's webhooks,
which answer 503 and are retried by their providers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway import tracing
from gateway.errors import Malformed, Overloaded

#: Reports that must wait before a call goes alongside one already out (see above).
OVERLAP_REPORTS = 32

Send = Callable[
    [list[pb.DeliveryReport], list[pb.QuarantinedItem]],
    Awaitable[ingest_pb.IngestReportsResponse],
]


@dataclass
class _Waiting:
    reports: Sequence[pb.DeliveryReport]
    quarantined: Sequence[pb.QuarantinedItem]
    future: asyncio.Future[ingest_pb.IngestReportsResponse] = field(repr=False)
    span: Any = field(default=None, repr=False)  # the webhook's, while traces are on


def answer_for(
    outcomes: Sequence[ingest_pb.IngestOutcome.ValueType], quarantined: int
) -> ingest_pb.IngestReportsResponse:
    """One webhook's answer from its slice of a batch's outcomes."""
    response = ingest_pb.IngestReportsResponse(quarantined=quarantined, outcomes=outcomes)
    for outcome in outcomes:
        if outcome == ingest_pb.INGEST_OUTCOME_STORED:
            response.stored += 1
        elif outcome == ingest_pb.INGEST_OUTCOME_DUPLICATE:
            response.duplicates += 1
        else:
            response.stale += 1
    return response


class Coalescer:
    """Gathers concurrent submissions into shared calls (see the module docstring)."""

    def __init__(
        self,
        send: Send,
        *,
        max_reports: int = 2000,
        max_in_flight: int = 2,
        max_queued: int = 20_000,
        overlap_reports: int = OVERLAP_REPORTS,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._send = send
        #: The loop submissions run on, when known: looking it up costs a system call each
        #: time before Python 3.12.
        self._loop = loop
        self.max_reports = max(1, max_reports)
        self.max_in_flight = max(1, max_in_flight)
        self.max_queued = max(1, max_queued)
        self.overlap_reports = max(1, overlap_reports)
        self.calls = 0  # calls made, for tests and benchmarks
        #: Reports submitted and not yet answered: waiting, or in a call that is out.
        self.queued = 0
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._waiting_reports = 0  # reports in self._waiting
        self._keys = itertools.count()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def full(self) -> bool:
        """True when no more reports may be queued (checked before a body is read)."""
        return self.queued >= self.max_queued

    async def submit(
        self, reports: Sequence[pb.DeliveryReport], quarantined: Sequence[pb.QuarantinedItem] = ()
    ) -> ingest_pb.IngestReportsResponse:
        """Waits until statusd committed these reports; returns their own answer. Raises
        Overloaded when the queue cannot take them."""
        size = len(reports) + len(quarantined)
        if self.queued and self.queued + size > self.max_queued:
            raise Overloaded(f"{self.queued} reports are waiting for statusd; retry later")
        future: asyncio.Future[ingest_pb.IngestReportsResponse] = (
            self._loop or asyncio.get_running_loop()
        ).create_future()
        key = next(self._keys)
        span = tracing.submitted(len(reports), len(quarantined))
        self._waiting[key] = _Waiting(reports, quarantined, future, span)
        self._waiting_reports += len(reports)
        self.queued += size
        try:
            self._dispatch()
            # A handler that goes away only cancels its own future; a call already out goes on.
            return await future
        finally:
            # Still waiting only if the handler went away: its reports leave the queue. Those
            # that left in a call are counted off when the call returns.
            if self._waiting.pop(key, None) is not None:
                self.queued -= size
                self._waiting_reports -= len(reports)

    def _dispatch(self) -> None:
        while self._waiting and self._may_call():
            batch = [self._waiting.popitem(last=False)[1]]
            size = len(batch[0].reports)
            while self._waiting and size + len(_first(self._waiting).reports) <= self.max_reports:
                size += len(_first(self._waiting).reports)
                batch.append(self._waiting.popitem(last=False)[1])
            self._waiting_reports -= size
            self._in_flight += 1
            task = asyncio.create_task(self._call(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _may_call(self) -> bool:
        if not self._in_flight:
            return True
        return (
            self._in_flight < self.max_in_flight and self._waiting_reports >= self.overlap_reports
        )

    async def _call(self, batch: list[_Waiting]) -> None:
        try:
            await self._deliver(batch)
        finally:
            self._in_flight -= 1
            self.queued -= sum(len(each.reports) + len(each.quarantined) for each in batch)
            self._dispatch()

    async def _deliver(self, batch: list[_Waiting]) -> None:
        reports = [report for waiting in batch for report in waiting.reports]
        quarantined = [item for waiting in batch for item in waiting.quarantined]
        self.calls += 1
        try:
            with tracing.ingest_call([waiting.span for waiting in batch], len(reports)):
                response = await self._send(reports, quarantined)
        except Malformed as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            for waiting in batch:  # find the one that statusd refuses; the others go through
                await self._deliver([waiting])
            return
        except Exception as exc:
            for waiting in batch:
                _fail(waiting, exc)
            return
        start = 0
        for waiting in batch:
            end = start + len(waiting.reports)
            if not waiting.future.done():
                waiting.future.set_result(
                    answer_for(response.outcomes[start:end], len(waiting.quarantined))
                )
            start = end


def _first(waiting: OrderedDict[int, _Waiting]) -> _Waiting:
    return next(iter(waiting.values()))


def _fail(waiting: _Waiting, error: BaseException) -> None:
    if not waiting.future.done():
        waiting.future.set_exception(error)
        waiting.future.exception()  # retrieved: a handler that left logs nothing

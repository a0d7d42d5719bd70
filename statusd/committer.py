"""Group commit: concurrent IngestReports calls share one durable store commit.

Callers :meth:`GroupCommitter.submit` their reports and wait. One background task takes
everything pending (up to ``max_reports``; optionally after a short ``window`` to let more
arrive), commits it in one transaction or bulk write, and hands every caller its own outcomes.
While a commit is in flight the next batch gathers, so under load each fsync carries many
calls without any added wait. A failed commit fails only the calls in that batch, with
:class:`~statusd.storage.base.StoreUnavailable`; they retry, and dedupe keeps retries harmless.
After each successful commit ``on_commit`` is called (statusd wakes its Watch change hub),
then ``on_receipts`` with the commit's receipts when it has any (the receipt latency), and
after each failed one ``on_failure`` with the number of consecutive failures (statusd's
readiness follows it); none may block. :attr:`GroupCommitter.quiet` is set while no
IngestReports call runs (:meth:`GroupCommitter.call`), none is pending and no commit is in
flight: Watch writes wait for it (briefly), so that they never crowd out ingestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import metrics, tracing
from statusd.storage.base import Outcome, Receipt, Store, StoreUnavailable

log = logging.getLogger(__name__)


class Quiet(asyncio.Event):
    """Set while ingestion is idle (see :attr:`GroupCommitter.quiet`); also counts how long
    it was not, so Watch's scheduler can tell a busy spell from a few calls in passing."""

    def __init__(self) -> None:
        super().__init__()
        super().set()
        self._busy = 0.0
        self._since: float | None = None

    def clear(self) -> None:
        if self.is_set():
            self._since = time.monotonic()
        super().clear()

    def set(self) -> None:
        if self._since is not None:
            self._busy += time.monotonic() - self._since
            self._since = None
        super().set()

    def busy_seconds(self) -> float:
        """Seconds ingestion was busy (this event clear) since it was made."""
        ongoing = time.monotonic() - self._since if self._since is not None else 0.0
        return self._busy + ongoing


@dataclass
class _Call:
    reports: Sequence[pb.DeliveryReport]
    quarantined: Sequence[pb.QuarantinedItem]
    future: asyncio.Future[list[Outcome]] = field(repr=False)
    span: Any = field(default=None, repr=False)  # the IngestReports call's, while traced


class GroupCommitter:
    """Gathers concurrent commits into batches (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        max_reports: int = 5000,
        window: float = 0.0,
        on_commit: Callable[[], None] | None = None,
        on_failure: Callable[[int], None] | None = None,
        on_receipts: Callable[[list[Receipt]], None] | None = None,
    ) -> None:
        self.store = store
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.on_receipts = on_receipts
        #: Commits that failed in a row (0 after a success).
        self.consecutive_failures = 0
        #: When the last commit finished (time.monotonic()), successful or not.
        self.last_commit = 0.0
        self.quiet = Quiet()
        self._calls = 0
        self._committing = False
        self.max_reports = max(1, max_reports)
        self.window = max(0.0, window)
        self.commits = 0  # batches committed, for tests and benchmarks
        self._pending: deque[_Call] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        """Commits what is pending, then stops; later submits fail with StoreUnavailable."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Marks an IngestReports call in progress, from its start to its answer."""
        self._calls += 1
        self.quiet.clear()
        try:
            yield
        finally:
            self._calls -= 1
            self._settle()

    def _settle(self) -> None:
        if not self._calls and not self._pending and not self._committing:
            self.quiet.set()

    async def submit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        """Waits until the reports are durably committed; returns their outcomes in order."""
        if self._closing:
            raise StoreUnavailable("statusd is shutting down")
        if not reports and not quarantined:
            return []
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(reports, quarantined, future, tracing.current()))
        self.quiet.clear()
        self._wakeup.set()
        # A caller that goes away only cancels its own future; the batch commits all the same.
        return await future

    async def release(self, ids: Sequence[str]) -> int:
        """Removes quarantined items (after a replay); returns how many. A release is rare
        and idempotent, so it goes to the store directly rather than through a batch."""
        return await self.store.release(ids)

    def _take_batch(self) -> list[_Call]:
        batch: list[_Call] = []
        size = 0
        while self._pending:
            call = self._pending[0]
            if batch and size + len(call.reports) > self.max_reports:
                break
            batch.append(self._pending.popleft())
            size += len(call.reports)
        return batch

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._settle()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.window and not self._closing:
                await asyncio.sleep(self.window)
            self._committing = True
            try:
                await self._commit(self._take_batch())
            finally:
                self._committing = False

    async def _commit(self, batch: list[_Call]) -> None:
        reports = [report for call in batch for report in call.reports]
        quarantined = [item for call in batch for item in call.quarantined]
        started = time.perf_counter()
        try:
            with tracing.commit(self.store.name, [call.span for call in batch], len(reports)):
                committed = await self.store.commit_batch(reports, quarantined)
        except Exception as exc:
            self.last_commit = time.monotonic()
            self.consecutive_failures += 1
            metrics.COMMIT_ERRORS.labels(self.store.name).inc()
            if not isinstance(exc, StoreUnavailable):
                log.exception("store commit failed unexpectedly")
                exc = StoreUnavailable(f"store commit failed: {type(exc).__name__}")
            else:
                log.warning("store commit failed: %s", exc)
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
                    call.future.exception()  # retrieved: a caller that left logs nothing
            if self.on_failure is not None:
                self.on_failure(self.consecutive_failures)
            return
        self.last_commit = time.monotonic()
        self.consecutive_failures = 0
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit()
        if committed.receipts and self.on_receipts is not None:
            self.on_receipts(committed.receipts)
        outcomes = committed.outcomes
        metrics.child(metrics.COMMIT_LATENCY, self.store.name).observe(
            time.perf_counter() - started
        )
        metrics.BATCH_REPORTS.observe(len(reports))
        metrics.BATCH_CALLS.observe(len(batch))
        start = 0
        for call in batch:
            end = start + len(call.reports)
            tracing.committed(call.span, call.reports, outcomes[start:end])
            if not call.future.done():
                call.future.set_result(outcomes[start:end])
            start = end

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.stop()

"""The report-timeout sweeper: registered messages with no final report by their deadline
become NO_REPORT.

Every ``DLRHUB_REPORT_SWEEP_SECONDS`` it asks the store for the messages awaiting a report
whose deadline passed (:meth:`~statusd.storage.base.Store.due_timeouts`, through the
deadline index: a partial index that holds only the messages awaiting a report, so the
sweep never scans) and commits a timeout entry for each through the group committer
(:func:`statusd.model.timeout_entry`). The commit is the guard: it applies an entry only
while its message still awaits that deadline, and an entry's fixed dedupe key makes a
second one a duplicate, so several statusd replicas sweeping one MongoDB at once time each
message out exactly once, and a final report that lands meanwhile wins by the order key.
The new entry is a Watch change like a report; a later final report overrides it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from statusd import metrics, model
from statusd.committer import GroupCommitter
from statusd.storage.base import STORED, Store, StoreUnavailable

log = logging.getLogger(__name__)

#: Messages timed out per commit; a sweep goes on while full batches come back.
SWEEP_BATCH = 500


def now_micros() -> int:
    return time.time_ns() // 1_000


class ReportSweeper:
    """Times registered messages out (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        committer: GroupCommitter,
        *,
        interval: float,
        batch: int = SWEEP_BATCH,
        clock: Callable[[], int] = now_micros,
    ) -> None:
        """``clock``: the current time in microseconds (a test passes a fake one)."""
        self.store = store
        self.committer = committer
        self.interval = interval
        self.batch = max(1, batch)
        self.clock = clock

    async def sweep(self) -> int:
        """Times out every message whose deadline passed; returns how many it timed out."""
        timed_out = 0
        while True:
            now = self.clock()
            due = await self.store.due_timeouts(now, self.batch)
            if not due:
                return timed_out
            entries = [model.timeout_entry(item.key, item.deadline, now) for item in due]
            outcomes = await self.committer.submit(entries)
            stored = Counter(
                entry.provider
                for entry, outcome in zip(entries, outcomes, strict=True)
                if outcome == STORED
            )
            for provider, count in stored.items():
                metrics.REPORT_TIMEOUTS.labels(provider).inc(count)
            timed_out += sum(stored.values())
            # A short batch was the last. A full one where nothing applied raced other
            # writers (another replica, final reports): the next sweep goes on from there.
            if len(due) < self.batch or not stored:
                return timed_out

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Sweeps every ``interval`` seconds until cancelled (after ``ready`` is set)."""
        if ready is not None:
            await ready.wait()
        while True:
            try:
                count = await self.sweep()
            except StoreUnavailable as exc:
                log.warning("report-timeout sweep failed: %s", exc)
            else:
                if count:
                    log.info("report timeouts", extra={"timed_out": count})
            await asyncio.sleep(self.interval)

"""WatchMessageStatuses: one change hub per statusd process, fanning changes out to streams.

The hub keeps one position in the store's change log. It wakes when this process commits
(:meth:`ChangeHub.notify`, which the group committer calls after every successful commit),
when :meth:`Store.wait_for_changes` returns (a store that several replicas write reports the
other replicas' commits that way), or after a poll interval. Then it reads
``store.changes(after=position)`` once, in batches, and offers each change to every live
subscription. Subscriptions never query the store for live changes.

Each subscription has a bounded queue. The hub never waits for one: when a queue is full,
that subscription ends with RESOURCE_EXHAUSTED (its stream ends after what was already
written; the client resumes from its last token) and the others go on. Ingestion never waits
for the hub either: :meth:`ChangeHub.notify` only sets an event.

Resuming from a token: the stream first replays the store's changes after the token's
position, written at the client's own pace. Then it joins the live feed under the hub's lock:
the hub catches up with the store (fanning out to the live subscriptions as usual); the
subscription queues what it still lacks up to the end of the log and registers; the hub
catches up once more, and the subscription skips the changes it already queued. Positions
are opaque (each store has its own, and ``last_position()`` may name "now" rather than a
change), so they are never ordered: only positions that :meth:`Store.changes` returned are
compared, for equality. That works with every store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from statusd import metrics
from statusd.errors import ResourceExhausted, StatusdError, Unavailable
from statusd.storage.base import Change, MessageFilter, Store, StoreUnavailable

log = logging.getLogger(__name__)

#: Every change: the hub and replays read the whole log and filter in memory.
EVERYTHING = MessageFilter()
#: Writes one response: a change (None for a heartbeat) and the position to resume after.
Send = Callable[[Change | None, str | None], Awaitable[None]]


class Subscription:
    """One stream's place in the hub: its filter, its queue and how far it got."""

    def __init__(self, query: MessageFilter, capacity: int) -> None:
        self.query = query
        self.capacity = capacity
        self.items: deque[Change] = deque()
        #: Every matching change up to this position is queued or written.
        self.position: str | None = None
        #: Positions queued while joining that the hub may offer once more.
        self.skip: set[str] = set()
        self.error: StatusdError | None = None
        self.signal = asyncio.Event()  # items arrived, or the subscription ended
        self.ended = asyncio.Event()

    def offer(self, changes: Sequence[Change]) -> bool:
        """Queues the changes that pass the filter; False (and ended) when the queue is full."""
        for change in changes:
            if change.position in self.skip:
                self.skip.discard(change.position)
            elif self.query.matches(change.message_status):
                if len(self.items) >= self.capacity:
                    self.end(
                        ResourceExhausted(
                            f"this stream fell more than {self.capacity} changes behind; "
                            "resume from the last resume_token"
                        )
                    )
                    return False
                self.items.append(change)
            self.position = change.position
        self.signal.set()
        return True

    def end(self, error: StatusdError) -> None:
        if self.error is None:
            self.error = error
            self.ended.set()
            self.signal.set()


class ChangeHub:
    """Reads the change log once per wake-up and fans it out (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 5000,
        poll_seconds: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.position: str | None = None
        self.reads = 0  # store reads by the hub, for tests
        self._live: set[Subscription] = set()
        self._open: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._ready = False  # the starting position has been read

    async def start(self) -> None:
        """Starts reading from the store's "now". When the store does not answer yet, the hub
        keeps trying in the background and Watch answers UNAVAILABLE until it does."""
        with contextlib.suppress(StoreUnavailable):
            await self._begin()
        self._task = asyncio.create_task(self._run(), name="change-hub")

    async def _begin(self) -> None:
        self.position = await self.store.last_position()
        self._ready = True

    def notify(self) -> None:
        """A commit landed: read the log soon (never blocks the caller)."""
        self._wake.set()

    async def stop(self) -> None:
        """Ends every stream with UNAVAILABLE (clients resume elsewhere) and stops reading."""
        self._closed = True
        for subscription in list(self._open):
            subscription.end(Unavailable("statusd is shutting down; resume from the last token"))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- reading the log -----------------------------------------------------------------

    async def _run(self) -> None:
        waiter: asyncio.Task[None] | None = None
        failures = 0
        try:
            while True:
                try:
                    if not self._ready:
                        await self._begin()
                    await self._drain()
                except StoreUnavailable as exc:  # streams wait; nothing is lost
                    failures += 1
                    log.warning("watch: cannot read changes: %s", exc)
                    await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                    continue
                except Exception:
                    failures += 1
                    log.exception("watch: reading changes failed; streams resume from tokens")
                    self._restart()
                    await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                    continue
                failures = 0
                if waiter is None or waiter.done():
                    if waiter is not None and waiter.exception() is not None:
                        log.warning("watch: waiting for changes failed: %s", waiter.exception())
                        await asyncio.sleep(self.poll_seconds)
                    waiter = asyncio.create_task(
                        self.store.wait_for_changes(self.position, self.poll_seconds)
                    )
                woken = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self._wake.clear()
        finally:
            if waiter is not None:
                waiter.cancel()

    def _restart(self) -> None:
        """After an unexpected read failure: end the live streams (each resumes from its own
        token, so nothing is lost) and start again from the store's "now"."""
        self._ready = False
        for subscription in list(self._live):
            subscription.end(Unavailable("the change feed restarted; resume from the last token"))
        self._live.clear()

    async def _drain(self) -> None:
        while True:
            async with self._lock:
                more = await self._read_locked()
            if not more:
                return

    async def _read_locked(self) -> bool:
        """One batch from the hub's position, fanned out; True when more may follow. With
        no live stream nothing is read: the hub only moves its position to the store's "now",
        so an idle hub costs one cheap query per wake-up, not a decode of every report."""
        if not self._live:
            self.position = await self.store.last_position() or self.position
            self.reads += 1
            return False
        changes = await self.store.changes(EVERYTHING, after=self.position, limit=self.batch)
        self.reads += 1
        if changes:
            for subscription in list(self._live):
                if subscription.error is not None or not subscription.offer(changes):
                    self._live.discard(subscription)
            self.position = changes[-1].position
        return len(changes) >= self.batch

    # -- streams -------------------------------------------------------------------------

    async def watch(
        self,
        query: MessageFilter,
        send: Send,
        *,
        heartbeat: float,
        resume: bool = False,
        after: str | None = None,
    ) -> None:
        """Streams through ``send`` until the client leaves or the subscription ends.

        Without ``resume`` the stream starts with the next change; with it, right after
        position ``after`` (None: the start of the log). Raises the subscription's error
        (RESOURCE_EXHAUSTED, UNAVAILABLE) when it ends.
        """
        if self._closed:
            raise Unavailable("statusd is shutting down")
        if not self._ready:
            raise Unavailable("statusd cannot read its store yet; retry shortly")
        subscription = Subscription(query, self.capacity)
        self._open.add(subscription)
        metrics.WATCHERS.inc()
        try:
            if resume:
                await self._send(subscription, send, None, after)
                await self._replay(subscription, send, after, heartbeat)
            else:
                subscription.position = self.position
                self._live.add(subscription)
                await self._send(subscription, send, None, subscription.position)
            await self._follow(subscription, send, heartbeat)
        finally:
            metrics.WATCHERS.dec()
            self._open.discard(subscription)
            self._live.discard(subscription)

    async def _replay(
        self, subscription: Subscription, send: Send, after: str | None, heartbeat: float
    ) -> None:
        """Writes the changes after ``after`` at the client's pace, then joins the live feed."""
        loop = asyncio.get_running_loop()
        position, written = after, loop.time()
        while True:
            changes = await self.store.changes(EVERYTHING, after=position, limit=self.batch)
            for change in changes:
                if subscription.query.matches(change.message_status):
                    await self._send(subscription, send, change, change.position)
                    written = loop.time()
                position = change.position
            if len(changes) < self.batch:
                break
            if loop.time() - written >= heartbeat:
                await self._send(subscription, send, None, position)
                written = loop.time()
        async with self._lock:
            while await self._read_locked():
                pass
            queued: set[str] = set()
            while True:  # what the subscription still lacks, up to the end of the log
                changes = await self.store.changes(EVERYTHING, after=position, limit=self.batch)
                if not subscription.offer(changes):
                    raise subscription.error or ResourceExhausted("stream ended")
                queued.update(change.position for change in changes)
                if changes:
                    position = changes[-1].position
                if len(changes) < self.batch:
                    break
            subscription.position = position
            subscription.skip = queued
            self._live.add(subscription)
            while await self._read_locked():  # what landed meanwhile: queued ones are skipped
                pass

    async def _follow(self, subscription: Subscription, send: Send, heartbeat: float) -> None:
        """The live phase: queued changes as they come, a heartbeat when idle."""
        while True:
            if subscription.error is not None:
                raise subscription.error
            if subscription.items:
                change = subscription.items.popleft()
                await self._send(subscription, send, change, change.position)
                continue
            subscription.signal.clear()
            try:
                await asyncio.wait_for(subscription.signal.wait(), heartbeat)
            except TimeoutError:
                await self._send(subscription, send, None, subscription.position)

    @staticmethod
    async def _send(
        subscription: Subscription, send: Send, change: Change | None, position: str | None
    ) -> None:
        """One write, abandoned when the subscription ends meanwhile (a stalled client)."""
        if subscription.error is not None:
            raise subscription.error
        write = asyncio.ensure_future(send(change, position))
        ended = asyncio.ensure_future(subscription.ended.wait())
        try:
            await asyncio.wait({write, ended}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            write.cancel()
            raise
        finally:
            ended.cancel()
        if not write.done():
            # The write waits for a client that stopped reading: the stream ends with the
            # subscription's error, after what the client already has.
            write.add_done_callback(_retrieve)
            raise subscription.error or ResourceExhausted("stream ended")
        write.result()


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()

"""WatchMessageStatuses: one change hub per statusd process, fanning changes out to streams.

The hub keeps one position in the store's change log. It wakes when this process commits
(:meth:`ChangeHub.notify`, called after every successful commit; with no live stream it only
notes that the position is behind, and the next stream to join reads the store's "now"), when
:meth:`Store.wait_for_changes` returns (a store that several replicas write reports the other
replicas' commits that way), or after a poll interval. Then it reads ``store.changes(after=
position)`` once, in batches, and appends each batch to its own log of recent changes: the
last ``capacity`` changes, shared by every stream. Subscriptions never query the store.

Each stream has a cursor in that log and writes what passes its filter when
:class:`statusd.fanout.Turns` gives it a turn: a few streams at once, a burst each, none
while an ingest commit is pending. Offering a batch to thousands of streams therefore costs
one append and a wake-up of the idle ones; the writing is paced, never on the commit path,
and ingestion never waits for the hub (:meth:`ChangeHub.notify` only sets an event). A stream
whose cursor falls out of the log (more than ``capacity`` changes behind) ends with
RESOURCE_EXHAUSTED, "fell behind; resume from your last resume_token": its stream ends after
what was already written, the client resumes, and the others go on.
:class:`statusd.fanout.StreamCaps` bounds the streams per process and per client.

Resuming from a token: the stream first replays the store's changes after the token's
position, in turns. Then it joins the live feed under the hub's lock: the hub catches up with
the store; the subscription queues what it still lacks up to the end of the store's log and
takes the end of the hub's log as its cursor; the hub catches up once more, and the
subscription skips the changes it already queued. Positions are opaque (each store has its
own, and ``last_position()`` may name "now" rather than a change), so they are never
ordered: only positions that :meth:`Store.changes` returned are compared, for equality. That
works with every store. A resume token must name a position (an empty one is refused rather
than read as "the whole log") that the store still has (:meth:`Store.check_position`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from statusd import metrics
from statusd.committer import Quiet
from statusd.errors import InvalidArgument, Unavailable
from statusd.fanout import StreamCaps, Subscription, Turns, fell_behind
from statusd.storage.base import (
    Change,
    InvalidPosition,
    MessageFilter,
    PositionGone,
    Store,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

#: Every change: the hub and replays read the whole log and filter in memory.
EVERYTHING = MessageFilter()
#: Writes one response: a change (None for a heartbeat) and the position to resume after.
Send = Callable[[Change | None, str | None], Coroutine[Any, Any, None]]
#: Responses one stream writes per turn.
BURST = 16
#: Idle streams woken per batch before the hub lets other work run.
WAKE_CHUNK = 500


class ChangeHub:
    """Reads the change log once per wake-up and fans it out (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 1000,
        poll_seconds: float = 1.0,
        batch: int = 500,
        max_streams: int = 2000,
        max_streams_per_client: int = 100,
        quiet: Quiet | None = None,
        cpu_share: float = 0.25,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.caps = StreamCaps(max_streams, max_streams_per_client)
        self.turns = Turns(quiet=quiet, cpu_share=cpu_share)
        self.position: str | None = None
        self.reads = 0  # store reads by the hub, for tests
        #: The newest changes; ``end`` numbers the next one, so entry ``n`` (an absolute
        #: number, ``end - len(log) <= n < end``) is ``log[n - (end - len(log))]``.
        self.log: deque[Change] = deque(maxlen=capacity)
        self.end = 0
        self._live: set[Subscription] = set()
        self._idle: set[Subscription] = set()  # live, caught up, waiting for changes
        self._open: set[Subscription] = set()
        self._stale = False  # commits landed while no live stream kept the position current
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._ready = False  # the starting position has been read

    @property
    def first(self) -> int:
        """The number of the oldest change still in the log."""
        return self.end - len(self.log)

    async def start(self) -> None:
        """Starts reading from the store's "now". When the store does not answer yet, the hub
        keeps trying in the background and Watch answers UNAVAILABLE until it does."""
        with contextlib.suppress(StoreUnavailable):
            await self._begin()
        self.turns.start()
        self._task = asyncio.create_task(self._run(), name="change-hub")

    async def _begin(self) -> None:
        self.position = await self.store.last_position()
        self._ready = True

    def notify(self) -> None:
        """A commit landed: read the log soon (never blocks the caller)."""
        if self._live:
            self._wake.set()
        else:
            self._stale = True

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
        await self.turns.stop()

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
        self._idle.clear()
        self.log.clear()

    async def _drain(self) -> None:
        while True:
            async with self._lock:
                more = await self._read_locked()
            if not more:
                return

    async def _read_locked(self) -> bool:
        """One batch from the hub's position, fanned out; True when more may follow. With
        no live stream the hub only moves its position to the store's "now" (one cheap query,
        not a decode of every report)."""
        if not self._live:
            self._stale = False  # a commit during the read sets it again
            self.position = await self.store.last_position() or self.position
            self.reads += 1
            return False
        changes = await self.store.changes(EVERYTHING, after=self.position, limit=self.batch)
        self.reads += 1
        if changes:
            self.log.extend(changes)
            self.end += len(changes)
            self.position = changes[-1].position
            for writer in list(self.turns.holders):  # a write blocked by a stalled client
                if writer.cursor < self.first:
                    writer.end(fell_behind(self.capacity))
            idle, self._idle = list(self._idle), set()
            for index, subscription in enumerate(idle):
                self.turns.enqueue(subscription)
                if index % WAKE_CHUNK == WAKE_CHUNK - 1:
                    await asyncio.sleep(0)  # calls waiting for the loop go first
        return len(changes) >= self.batch

    # -- streams -------------------------------------------------------------------------

    async def watch(
        self,
        query: MessageFilter,
        send: Send,
        *,
        heartbeat: float,
        after: str | None = None,
        client: str = "",
    ) -> None:
        """Streams through ``send`` until the client leaves or the subscription ends.

        Without ``after`` the stream starts with the next change; with it, right after that
        position, which the store must still have (else INVALID_ARGUMENT or OUT_OF_RANGE).
        ``client`` names the caller for the per-client cap. Raises the subscription's error
        (RESOURCE_EXHAUSTED, UNAVAILABLE) when it ends.
        """
        if self._closed:
            raise Unavailable("statusd is shutting down")
        if not self._ready:
            raise Unavailable("statusd cannot read its store yet; retry shortly")
        if after is not None:
            await self._check(after)
        self.caps.take(client)
        subscription = Subscription(query)
        self._open.add(subscription)
        metrics.WATCHERS.inc()
        try:
            if after is not None:
                async with self._turn(subscription):
                    await subscription.write(send(None, after))
                await self._replay(subscription, send, after, heartbeat)
            else:
                async with self._lock:  # not in the middle of a fan-out
                    if self._stale:  # commits with no live stream: the store's "now"
                        await self._read_locked()
                    subscription.position = self.position
                    subscription.cursor = self.end
                    self._live.add(subscription)
                    if self._stale:  # a commit during that read: the hub reads it
                        self._wake.set()
                async with self._turn(subscription):
                    await subscription.write(send(None, subscription.position))
            await self._follow(subscription, send, heartbeat)
        finally:
            subscription.end(Unavailable("stream closed"))  # leaves the line, if in it
            self.turns.done(subscription)
            self.caps.give_back(client)
            metrics.WATCHERS.dec()
            self._open.discard(subscription)
            self._live.discard(subscription)
            self._idle.discard(subscription)

    async def _check(self, after: str) -> None:
        if not after:
            raise InvalidArgument("resume_token: names no position; start without one")
        try:
            await self.store.check_position(after)
        except PositionGone as exc:
            raise PositionGone(f"resume_token: {exc}") from None
        except InvalidPosition as exc:
            raise InvalidArgument(f"resume_token: {exc}") from None

    def _yield(self, subscription: Subscription, written: int) -> bool:
        """Whether a turn that wrote ``written`` responses ends early for ingestion."""
        return bool(written) and self.turns.yielding(subscription)

    def _behind(self, subscription: Subscription) -> bool:
        return bool(subscription.items) or subscription.cursor < self.end

    @contextlib.asynccontextmanager
    async def _turn(
        self, subscription: Subscription, idle: float | None = None
    ) -> AsyncIterator[None]:
        """Waits for the subscription's turn to write (see :class:`statusd.fanout.Turns`).

        With ``idle``, a caught-up live subscription waits up to that long for changes
        before it gets in line anyway (for a heartbeat).
        """
        if idle is None or self._behind(subscription):
            self.turns.enqueue(subscription)
        try:
            while not subscription.holding:
                if subscription.error is not None:
                    raise subscription.error
                if subscription.in_line:
                    await subscription.wait()
                    continue
                self._idle.add(subscription)

                def due(subscription: Subscription = subscription) -> None:
                    self._idle.discard(subscription)  # the heartbeat is due: get in line
                    self.turns.enqueue(subscription)

                await subscription.wait(idle, due)
                self._idle.discard(subscription)
            if subscription.error is not None:
                raise subscription.error
            yield
        finally:
            self.turns.done(subscription)

    async def _replay(
        self, subscription: Subscription, send: Send, after: str | None, heartbeat: float
    ) -> None:
        """Writes the changes after ``after`` in turns, then joins the live feed."""
        subscription.last_write = asyncio.get_running_loop().time()
        loop = asyncio.get_running_loop()
        position, pending, exhausted = after, deque[Change](), False
        while pending or not exhausted:
            async with self._turn(subscription):  # replays read and write in turns as well
                if not pending:
                    changes = await self.store.changes(EVERYTHING, after=position, limit=self.batch)
                    exhausted = len(changes) < self.batch
                    position = changes[-1].position if changes else position
                    pending.extend(
                        c for c in changes if subscription.query.matches(c.message_status)
                    )
                written = 0
                while pending and written < BURST and not self._yield(subscription, written):
                    change = pending.popleft()
                    await subscription.write(send(change, change.position))
                    written += 1
                if not pending and loop.time() - subscription.last_write >= heartbeat:
                    await subscription.write(send(None, position))  # a long scan, no match
        async with self._lock:
            while await self._read_locked():
                pass
            queued: set[str] = set()
            while True:  # what the subscription still lacks, up to the end of the log
                changes = await self.store.changes(EVERYTHING, after=position, limit=self.batch)
                matching = [c for c in changes if subscription.query.matches(c.message_status)]
                if len(subscription.items) + len(matching) > self.capacity:
                    raise fell_behind(self.capacity)
                subscription.items.extend(matching)
                queued.update(change.position for change in changes)
                if changes:
                    position = changes[-1].position
                if len(changes) < self.batch:
                    break
            subscription.position = position
            subscription.skip = queued
            subscription.cursor = self.end
            self._live.add(subscription)
            while await self._read_locked():  # what landed meanwhile: queued ones are skipped
                pass

    async def _follow(self, subscription: Subscription, send: Send, heartbeat: float) -> None:
        """The live phase: in each turn, a burst of what the log holds for the subscription;
        a heartbeat when it wrote nothing for ``heartbeat`` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            idle = max(0.0, subscription.last_write + heartbeat - loop.time())
            async with self._turn(subscription, idle):
                written = 0
                while (
                    subscription.items
                    and written < BURST
                    and not self._yield(subscription, written)
                ):
                    change = subscription.items.popleft()
                    await subscription.write(send(change, change.position))
                    written += 1
                while (
                    written < BURST
                    and subscription.cursor < self.end
                    and not self._yield(subscription, written)
                ):
                    if subscription.cursor < self.first:
                        raise fell_behind(self.capacity)
                    change = self.log[subscription.cursor - self.first]
                    subscription.cursor += 1
                    if change.position in subscription.skip:
                        subscription.skip.discard(change.position)
                        continue
                    subscription.position = change.position
                    if subscription.query.matches(change.message_status):
                        await subscription.write(send(change, change.position))
                        written += 1
                if not written and loop.time() - subscription.last_write >= heartbeat:
                    await subscription.write(send(None, subscription.position))

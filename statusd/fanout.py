"""What keeps Watch from slowing ingestion: stream caps, and turns to write.

:class:`StreamCaps` counts open WatchMessageStatuses streams, per process and per client,
and refuses one more above either cap with RESOURCE_EXHAUSTED. A client is its bearer token
(a digest of it, never the token) when the call carries one; without one (authentication
off) it is the peer's IP address, so every stream from one address shares one bucket.

:class:`Turns` schedules the writes to Watch streams. A stream with something to write gets
in line; the scheduler lets at most ``concurrency`` streams write at once (each a burst of a
few responses), lets none start while an IngestReports call runs or a commit is pending or in
flight (for at most ``max_wait`` seconds at a time), and pauses while the event loop's thread
used more than ``cpu_share`` of its time in the current tenth of a second, unless ingestion
has stayed light (busy less than half of each tenth) for three tenths. So however many
streams are open, the event loop holds only a few Watch writes when an IngestReports call
needs it, steady ingestion keeps all but ``cpu_share`` of the loop, and a stream that cannot
keep up falls behind (and is ended, see :mod:`statusd.watch`) instead of slowing ingestion;
while ingestion only passes now and then, Watch may use the time it leaves. Streams wait for their
turn on their own future, which only the scheduler resolves: a change that reaches thousands
of streams wakes a few of them at a time, not all at once (heartbeat timers only put a stream
in line).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from statusd.auth import bearer_token
from statusd.committer import Quiet
from statusd.errors import ResourceExhausted, StatusdError
from statusd.storage.base import Change, MessageFilter

#: The window over which the CPU share of turns is measured, in seconds.
CPU_WINDOW = 0.1
#: Windows in a row of light ingestion after which the CPU share no longer caps turns.
LIGHT_WINDOWS = 3


def client_identity(metadata: Sequence[tuple[str, str | bytes]] | None, peer: str) -> str:
    """Whose stream this is: ``token:<digest>`` for a bearer token, else ``peer:<address>``
    (gRPC's ``ipv4:10.0.0.7:51234`` without the port)."""
    token = bearer_token(metadata)
    if token is not None:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    address = peer
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            address = peer.removeprefix(prefix).rsplit(":", 1)[0].strip("[]")
            with contextlib.suppress(ValueError):
                address = str(ipaddress.ip_address(address))
    return "peer:" + address


def fell_behind(capacity: int) -> ResourceExhausted:
    """Ends a stream whose cursor fell out of the hub's log."""
    return ResourceExhausted(
        f"fell behind (more than {capacity} changes unread); resume from your last resume_token"
    )


class StreamCaps:
    """Open streams per process and per client (see the module docstring)."""

    def __init__(self, per_process: int, per_client: int) -> None:
        self.per_process = per_process
        self.per_client = per_client
        self.open: Counter[str] = Counter()
        self.total = 0

    def take(self, client: str) -> None:
        """Counts one more stream of ``client``; RESOURCE_EXHAUSTED above a cap."""
        if self.total >= self.per_process:
            raise ResourceExhausted(
                f"this statusd already serves {self.per_process} Watch streams "
                "(DLRHUB_WATCH_MAX_STREAMS); retry later or on another replica"
            )
        if self.open[client] >= self.per_client:
            raise ResourceExhausted(
                f"this client already has {self.per_client} open Watch streams "
                "(DLRHUB_WATCH_MAX_STREAMS_PER_CLIENT); close one or share a stream"
            )
        self.open[client] += 1
        self.total += 1

    def give_back(self, client: str) -> None:
        self.total -= 1
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class Subscription:
    """One stream's place in the hub: its filter, where it is in the hub's log, and its
    scheduling state (in line, holding a turn, the futures it waits on)."""

    def __init__(self, query: MessageFilter) -> None:
        self.query = query
        #: Changes it still lacks from joining (a resumed stream), written before the log.
        self.items: deque[Change] = deque()
        #: Positions in ``items`` that the hub's log may carry once more: skipped there.
        self.skip: set[str] = set()
        #: The next entry of the hub's log to look at (an absolute number, see ChangeHub).
        self.cursor = 0
        #: Every matching change up to this position is written (or queued in ``items``).
        self.position: str | None = None
        self.error: StatusdError | None = None
        self.in_line = False
        self.holding = False
        #: This turn came after ingestion stayed busy for ``max_wait``: it writes a full
        #: burst even while ingestion is busy (Watch's share under sustained ingest).
        self.forced = False
        self.last_write = 0.0
        self._turn: asyncio.Future[None] | None = None
        self._write: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self.error is not None

    def end(self, error: StatusdError) -> None:
        """Ends the stream with ``error`` (the first one wins); a write in progress is
        abandoned, a wait for a turn ends."""
        if self.error is None:
            self.error = error
            self.wake()
            if self._write is not None and not self._write.done():
                self._write.set_result(None)

    def wake(self) -> None:
        """Its turn came (or it ended, or its heartbeat is due)."""
        if self._turn is not None and not self._turn.done():
            self._turn.set_result(None)

    async def wait(
        self, timeout: float | None = None, on_timeout: Callable[[], None] | None = None
    ) -> None:
        """Until :meth:`wake`; after ``timeout`` seconds, ``on_timeout`` runs (a timer
        callback, which wakes no task: thousands of heartbeats falling due together must not
        wake thousands of streams together)."""
        loop = asyncio.get_running_loop()
        self._turn = loop.create_future()
        timer = None
        if timeout is not None and on_timeout is not None:
            timer = loop.call_later(timeout, on_timeout)
        try:
            await self._turn
        finally:
            self._turn = None
            if timer is not None:
                timer.cancel()

    async def write(self, write: Coroutine[Any, Any, None]) -> None:
        """Awaits one write, abandoned (and the error raised) when the stream ends meanwhile:
        a client that stopped reading blocks its write, not its turn."""
        if self.error is not None:
            write.close()  # never started
            raise self.error
        task = asyncio.ensure_future(write)
        if not task.done():
            self._write = asyncio.get_running_loop().create_future()
            task.add_done_callback(self._written)
            try:
                await self._write
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                self._write = None
            if not task.done():
                task.add_done_callback(_retrieve)
                raise self.error or ResourceExhausted("stream ended")
        task.result()
        self.last_write = asyncio.get_running_loop().time()

    def _written(self, _: asyncio.Future[None]) -> None:
        if self._write is not None and not self._write.done():
            self._write.set_result(None)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class ShareWindow:
    """One ``CPU_WINDOW`` of the turn scheduler: when it started, the loop thread's CPU time
    then, and whether the CPU share caps turns in it. It does unless ingestion stayed light
    (an IngestReports call or a commit under way less than half of the time) through each of
    the last ``light_windows`` windows (:data:`LIGHT_WINDOWS`), and whenever the scheduler
    cannot tell (no :class:`~statusd.committer.Quiet` to ask): one busy window caps it again
    at once. Under a steady ingest load Watch takes at most its share; while ingestion only
    passes now and then, Watch writes may use the time it leaves (they still wait for each
    call, and yield to it mid-turn)."""

    def __init__(
        self, start: float, cpu: float, busy: float | None, light_windows: int = LIGHT_WINDOWS
    ) -> None:
        self.start = start
        self.cpu = cpu
        self.busy = busy
        self.light_windows = light_windows
        self.light = 0  # windows in a row in which ingestion was light

    @property
    def capped(self) -> bool:
        return self.light < self.light_windows

    def renew(self, now: float, cpu: float, busy: float | None) -> None:
        if busy is not None and self.busy is not None:
            light = busy - self.busy < (now - self.start) / 2
            self.light = self.light + 1 if light else 0
        self.start, self.cpu, self.busy = now, cpu, busy


class Turns:
    """Lets a few streams write at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        quiet: Quiet | None = None,
        max_wait: float = 0.005,
        cpu_share: float = 0.25,
        light_windows: int = LIGHT_WINDOWS,
    ) -> None:
        self.concurrency = concurrency
        #: Set while no ingest commit is pending or in flight (the group committer's).
        self.quiet = quiet
        self.max_wait = max_wait
        #: The most of the event loop thread's CPU time turns are given out within; above
        #: it the scheduler pauses (for ``max_wait`` at a time), so that Watch never takes
        #: the whole core ingestion shares with it.
        self.cpu_share = cpu_share
        self.light_windows = light_windows
        self.granted = 0  # turns given, for tests
        self.paused = 0  # pauses for the CPU share
        self._free = concurrency
        self._line: deque[Subscription] = deque()
        #: The streams writing now (a stalled one among them is ended by the hub).
        self.holders: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="watch-turns")

    def yielding(self, writer: Subscription) -> bool:
        """Ingestion is busy: a stream holding a turn stops after its current write (unless
        its turn was forced)."""
        return self.quiet is not None and not self.quiet.is_set() and not writer.forced

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def enqueue(self, writer: Subscription) -> None:
        """Puts a stream in line (once) for its next turn."""
        if not writer.in_line and not writer.holding and not writer.ended:
            writer.in_line = True
            self._line.append(writer)
            self._wake.set()

    def done(self, writer: Subscription) -> None:
        """A stream finished its turn (or ended while holding one)."""
        if writer.holding:
            writer.holding = False
            self.holders.discard(writer)
            self._free += 1
            self._wake.set()

    def _busy_seconds(self) -> float | None:
        return self.quiet.busy_seconds() if self.quiet is not None else None

    async def _within_share(self, window: ShareWindow) -> None:
        """Pauses while the loop thread used more than ``cpu_share`` of the current window,
        when the share applies to it (see :class:`ShareWindow`)."""
        while True:
            now, cpu = time.monotonic(), time.thread_time()
            if now - window.start >= CPU_WINDOW:  # a new window: at least one turn per window
                window.renew(now, cpu, self._busy_seconds())
                return
            used = cpu - window.cpu
            if not window.capped or used <= self.cpu_share * (now - window.start):
                return
            self.paused += 1
            await asyncio.sleep(min(self.max_wait, used / self.cpu_share - (now - window.start)))

    async def _run(self) -> None:
        window = ShareWindow(
            time.monotonic(), time.thread_time(), self._busy_seconds(), self.light_windows
        )
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._free > 0 and self._line:
                await self._within_share(window)
                forced = False
                if self.quiet is not None and not self.quiet.is_set():
                    try:
                        await asyncio.wait_for(self.quiet.wait(), self.max_wait)
                    except TimeoutError:
                        forced = True
                writer = self._line.popleft()
                writer.in_line = False
                if writer.ended:
                    continue
                writer.holding = True
                writer.forced = forced
                self.holders.add(writer)
                self._free -= 1
                self.granted += 1
                writer.wake()

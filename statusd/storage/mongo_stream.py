"""The change-stream feed of the MongoDB store on a replica set or a sharded cluster.

**One long-lived change stream per process** (the *tail*) follows the updates that mark an
event ``applied`` (see :mod:`statusd.storage.mongo_changes`). The change hub reads it from
where it last stopped: :meth:`StreamFeed.changes` after a position the tail stands at reads
on from the tail, :meth:`StreamFeed.last_position` reads the tail to its end, and
:meth:`StreamFeed.wait` polls it. A call after any other position (a client resuming from
its token) moves the tail there: it is reopened with ``resume_after`` that token, and the
hub's next call moves it back the same way. A driver error closes the tail; the next call
reopens it from the last token it read, so no change is skipped.

The tail's getMores wait at most :data:`_AWAIT_MS` on the server (a read that has caught up
returns at once); :meth:`StreamFeed.wait` asks again every :data:`_POLL_SECONDS`, so another
replica's commit reaches this replica's watchers within about that time (this replica's own
commits wake its hub directly).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Final

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import PyMongoError

from statusd.storage import mongo_docs as docs
from statusd.storage.base import Change, InvalidPosition, MessageFilter
from statusd.storage.mongo_changes import (
    Collection,
    Feed,
    decode_token,
    encode_token,
    lost_positions,
)

#: The updates that make an event visible: the last step of every commit.
APPLIED: Final[list[dict[str, Any]]] = [
    {"$match": {"operationType": "update", "updateDescription.updatedFields.applied": True}},
    {"$project": {"documentKey": 1}},
]
_AWAIT_MS: Final = 10
_POLL_SECONDS: Final = 0.1

Stream = AsyncChangeStream[docs.Document]


class StreamFeed(Feed):
    """A change stream on ``events`` (see the module docstring)."""

    _START: Final = "changes_start"

    def __init__(self, events: Collection, messages: Collection, meta: Collection) -> None:
        super().__init__(events, messages, meta)
        self.start: Mapping[str, Any] | None = None
        self.opened = 0  # change streams opened, for tests
        self._tail: Stream | None = None
        self._token: Mapping[str, Any] | None = None  # where the tail stands
        self._here: set[str] = set()  # positions equivalent to the tail's place
        self._read: list[tuple[str, str]] = []  # read from the tail, not yet returned
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Records, once per database, a resume token from before any event was applied:
        "after None" (from the start) resumes there. The first statusd to open wins; every
        event is applied after its own writer opened, so after the winner's token."""
        stored = await self.meta.find_one({"_id": self._START})
        if stored is None:
            token = await self._now()
            await self.meta.update_one(
                {"_id": self._START}, {"$setOnInsert": {"token": token}}, upsert=True
            )
            stored = await self.meta.find_one({"_id": self._START})
        assert stored is not None  # just upserted
        self.start = stored["token"]

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _now(self) -> Mapping[str, Any]:
        self.opened += 1
        async with await self.events.watch(APPLIED, max_await_time_ms=_AWAIT_MS) as stream:
            return await _end_token(stream)

    async def reserve(self, count: int) -> int | None:
        return None  # the server orders the stream

    def committed(self, last: int | None) -> None:
        return None  # the stream shows every applied event by itself

    # -- the tail ------------------------------------------------------------------------

    async def _drop(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None:
            with contextlib.suppress(PyMongoError):
                await tail.close()

    async def _open(self, token: Mapping[str, Any] | None, after: str | None) -> Stream:
        """Opens the tail at ``token`` (None: now), the place of position ``after``."""
        await self._drop()
        with lost_positions(after):
            self.opened += 1
            self._tail = await self.events.watch(
                APPLIED, resume_after=token, max_await_time_ms=_AWAIT_MS
            )
        self._token = token
        return self._tail

    async def _place(self, after: str | None) -> Stream:
        """The tail, standing at ``after`` (None: the start); opened or moved there when it
        stands elsewhere, reopened from its last token after an error."""
        if after is None:
            assert self.start is not None  # set by open()
            after = encode_token(self.start)
        if after in self._here:
            return self._tail or await self._open(self._token, after)
        token = decode_token(after)
        self._read.clear()
        self._here = set()
        tail = await self._open(token, after)
        self._here = {after}
        return tail

    async def _next(self, tail: Stream) -> tuple[str, str] | None:
        """The next change from the tail, or None when it has caught up (the tail's end is
        then also where the caller stands: callers read on only when nothing is held back)."""
        try:
            change = await tail.try_next()
        except PyMongoError:
            await self._drop()  # reopened from self._token by the next call
            raise
        except asyncio.CancelledError:
            self._tail = None  # the driver closed it
            raise
        if change is None:
            token = tail.resume_token
            if token is not None:
                self._token = token
                self._here.add(encode_token(token))
            return None
        self._token = change["_id"]
        return encode_token(change["_id"]), change["documentKey"]["_id"]

    async def _scan(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        tail = await self._place(after)
        scanned, self._read = self._read[:limit], self._read[limit:]
        if scanned:
            self._here = {scanned[-1][0]}
        while len(scanned) < limit and not self._read:
            found = await self._next(tail)
            if found is None:
                break
            scanned.append(found)
            self._here = {found[0]}
        return scanned

    # -- the feed ------------------------------------------------------------------------

    async def changes(self, query: MessageFilter, after: str | None, limit: int) -> list[Change]:
        found: list[Change] = []
        position = after
        async with self._lock:
            while len(found) < limit:
                with lost_positions(after):
                    scanned = await self._scan(position, limit - len(found))
                if not scanned:
                    break
                found += await self.resolve(scanned, query)
                position = scanned[-1][0]
            holder = found[-1].position if found else after
            if query == MessageFilter() and holder is not None:
                # What was scanned past the caller's next position was dropped only because
                # its message was purged meanwhile: the tail's place is equivalent to it.
                self._here.add(holder)
        return found

    async def last_position(self) -> str | None:
        async with self._lock:
            try:
                return await self._end()
            except InvalidPosition:  # the tail's place left the oplog: start again at "now"
                self._here = set()
                return await self._end()

    async def _end(self) -> str:
        """Reads the tail to its end (opening one at "now" if there is none to resume)."""
        with lost_positions(None):
            if self._here and (self._tail is not None or self._token is not None):
                tail = await self._place(next(iter(self._here)))
            else:
                tail = await self._open(None, None)
            self._read.clear()
            self._here = set()
            while await self._next(tail) is not None:
                self._here = set()
        assert self._token is not None  # a caught-up read always has a token
        position = encode_token(self._token)
        self._here = {position}
        return position

    async def wait(self, after: str | None, timeout: float) -> None:
        """Returns when a change after ``after`` was applied (by any replica), or after
        ``timeout``. A position the tail does not stand at (the hub has read on since it
        asked, or it is a client's), a lost or a foreign one returns at once, a store outage
        after ``timeout``: the next :meth:`changes` call reads on or reports the error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if after is None or after not in self._here:
                return  # a caller behind the tail (there are changes after it) or elsewhere
            try:
                async with self._lock:
                    with lost_positions(after):
                        tail = await self._place(after)
                        if self._read:
                            return
                        found = await self._next(tail)
                    if found is not None:
                        self._read.append(found)
                        return
            except InvalidPosition:
                return
            except PyMongoError:
                pass
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(_POLL_SECONDS, left))


async def _end_token(stream: Stream) -> Mapping[str, Any]:
    token = stream.resume_token
    while token is None:  # servers before 4.0.7 send no post-batch token
        await stream.try_next()
        token = stream.resume_token
    return token

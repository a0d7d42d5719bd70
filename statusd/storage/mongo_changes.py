"""Change positions of the MongoDB store: what Watch resumes from.

Two feeds, chosen at start-up from the server's ``hello`` answer:

* :class:`StreamFeed` on a replica set or a sharded cluster: a change stream on ``events``
  (every new distinct report is one insert there). Positions are the stream's resume tokens,
  so every statusd replica sees every replica's changes, in the order the cluster committed
  them, and :meth:`StreamFeed.wait` wakes a replica's change hub when *another* replica
  commits. A position older than the oplog keeps raises :class:`InvalidPosition`.
* :class:`SequenceFeed` on a standalone server (which has no change streams, and neither has
  mongomock): each commit reserves a range of numbers from a counter document and stamps them
  on its new events; a reader sees numbers up to the end of the last commit *this process*
  finished, so no reader ever skips an event that is still being written. That is correct
  for one writer; Watch across several statusd replicas needs a replica set.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import contextlib
from collections.abc import Mapping
from typing import Any, Final

import bson
import bson.errors
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage import mongo_docs as docs
from statusd.storage.base import Change, InvalidPosition, MessageFilter

Collection = AsyncCollection[docs.Document]

#: Server codes that mean "this resume point is gone or was never valid".
_LOST_POSITION_CODES: Final = frozenset({260, 280, 286})
_INSERTS: Final = [{"$match": {"operationType": "insert"}}]
_SCAN_AWAIT_MS: Final = 10  # how long changes() lets one getMore wait for more
_WAIT_STEP_SECONDS: Final = 1.0  # the longest one getMore of wait() blocks
_SEQ_PREFIX: Final = "s"
_STREAM_PREFIX: Final = "c"


class Feed(abc.ABC):
    """What both feeds share: turning scanned event documents into :class:`Change` s."""

    def __init__(self, events: Collection, messages: Collection, meta: Collection) -> None:
        self.events = events
        self.messages = messages
        self.meta = meta

    @abc.abstractmethod
    async def open(self) -> None:
        """Reads or creates what the feed keeps in ``meta``."""

    @abc.abstractmethod
    async def reserve(self, count: int) -> int | None:
        """The first of ``count`` numbers for a commit's new events (None: not numbered)."""

    @abc.abstractmethod
    def committed(self, last: int | None) -> None:
        """A commit whose events are numbered up to ``last`` has finished."""

    @abc.abstractmethod
    async def changes(self, query: MessageFilter, after: str | None, limit: int) -> list[Change]:
        """See :meth:`statusd.storage.base.Store.changes`."""

    @abc.abstractmethod
    async def last_position(self) -> str | None:
        """See :meth:`statusd.storage.base.Store.last_position`."""

    async def wait(self, after: str | None, timeout: float) -> None:
        await asyncio.sleep(timeout)

    async def resolve(
        self, scanned: list[tuple[str, docs.Document]], query: MessageFilter
    ) -> list[Change]:
        """Changes for scanned events (position, event document) that pass ``query``."""
        keys = sorted({event["key"] for _, event in scanned})
        found = await self.messages.find({"_id": {"$in": keys}}).to_list(None)
        by_key = {document["_id"]: document for document in found}
        changes = []
        for position, event in scanned:
            report = pb.DeliveryReport.FromString(bytes(event["report"]))
            stored = docs.micros_of(event["stored_at"])
            status = docs.projected_status(by_key.get(event["key"]), report, stored)
            if query.matches(status):
                changes.append(Change(position, report, status))
        return changes


class SequenceFeed(Feed):
    """Numbered events on a standalone server (see the module docstring)."""

    _COUNTER: Final = "event_seq"

    def __init__(self, events: Collection, messages: Collection, meta: Collection) -> None:
        super().__init__(events, messages, meta)
        self.visible = 0

    async def open(self) -> None:
        counter = await self.meta.find_one({"_id": self._COUNTER})
        self.visible = int(counter["value"]) if counter else 0

    async def reserve(self, count: int) -> int | None:
        counter = await self.meta.find_one_and_update(
            {"_id": self._COUNTER},
            {"$inc": {"value": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # an upsert always returns the document
        return int(counter["value"]) - count + 1

    def committed(self, last: int | None) -> None:
        if last is not None:
            self.visible = max(self.visible, last)

    async def changes(self, query: MessageFilter, after: str | None, limit: int) -> list[Change]:
        start = _decode_seq(after) if after is not None else 0
        found: list[Change] = []
        while len(found) < limit:
            events = (
                await self.events.find({"seq": {"$gt": start, "$lte": self.visible}})
                .sort("seq")
                .limit(limit)
                .to_list(None)
            )
            if not events:
                break
            scanned = [(_SEQ_PREFIX + str(event["seq"]), event) for event in events]
            found += await self.resolve(scanned, query)
            start = events[-1]["seq"]
            if len(events) < limit:
                break
        return found[:limit]

    async def last_position(self) -> str | None:
        return _SEQ_PREFIX + str(self.visible) if self.visible else None


class StreamFeed(Feed):
    """A change stream on ``events`` (see the module docstring)."""

    _START: Final = "changes_start"

    def __init__(self, events: Collection, messages: Collection, meta: Collection) -> None:
        super().__init__(events, messages, meta)
        self.start: Mapping[str, Any] | None = None

    async def open(self) -> None:
        """Records, once per database, a resume token from before any event was inserted:
        "after None" (from the start) resumes there. The first statusd to open wins; every
        event is inserted after its own writer opened, so after the winner's token."""
        stored = await self.meta.find_one({"_id": self._START})
        if stored is None:
            await self.meta.update_one(
                {"_id": self._START},
                {"$setOnInsert": {"token": await self._now()}},
                upsert=True,
            )
            stored = await self.meta.find_one({"_id": self._START})
        assert stored is not None  # just upserted
        self.start = stored["token"]

    async def _now(self) -> Mapping[str, Any]:
        async with await self.events.watch(_INSERTS, max_await_time_ms=1) as stream:
            token = stream.resume_token
            while token is None:  # servers before 4.0.7 send no post-batch token
                await stream.try_next()
                token = stream.resume_token
            return token

    async def reserve(self, count: int) -> int | None:
        return None  # the server orders the stream

    def committed(self, last: int | None) -> None:
        return None  # the stream shows every committed insert by itself

    def _token(self, after: str | None) -> Mapping[str, Any]:
        if after is None:
            assert self.start is not None  # set by open()
            return self.start
        return _decode_token(after)

    async def changes(self, query: MessageFilter, after: str | None, limit: int) -> list[Change]:
        found: list[Change] = []
        with _lost_positions(after):
            async with await self.events.watch(
                _INSERTS,
                resume_after=self._token(after),
                max_await_time_ms=_SCAN_AWAIT_MS,
                batch_size=limit,
            ) as stream:
                while len(found) < limit:
                    scanned: list[tuple[str, docs.Document]] = []
                    while len(scanned) < limit:
                        change = await stream.try_next()
                        if change is None:
                            break
                        scanned.append((_encode_token(change["_id"]), change["fullDocument"]))
                    if not scanned:
                        break
                    found += await self.resolve(scanned, query)
        return found[:limit]

    async def last_position(self) -> str | None:
        return _encode_token(await self._now())

    async def wait(self, after: str | None, timeout: float) -> None:
        """Returns when any replica inserted an event after ``after``, or after ``timeout``.
        A lost or foreign position returns at once and a store outage after ``timeout``: the
        next :meth:`changes` call reports either."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Each getMore waits at most one step, so the wait ends on time without cancelling a
        # request in flight (which would cost the connection); the outer limit is a backstop.
        step = max(0.001, min(timeout, _WAIT_STEP_SECONDS))
        try:
            async with asyncio.timeout(timeout + _WAIT_STEP_SECONDS):
                with _lost_positions(after):
                    stream = await self.events.watch(
                        _INSERTS,
                        resume_after=self._token(after),
                        max_await_time_ms=int(step * 1000),
                    )
                async with stream:
                    while deadline - loop.time() >= step / 2:
                        if await stream.try_next() is not None:
                            return
        except (TimeoutError, InvalidPosition):
            return
        except PyMongoError:
            await asyncio.sleep(max(0.0, deadline - loop.time()))


@contextlib.contextmanager
def _lost_positions(after: str | None) -> Any:
    try:
        yield
    except OperationFailure as exc:
        if exc.code in _LOST_POSITION_CODES:
            raise InvalidPosition(
                f"change position {(after or 'start')[:40]!r} is no longer in the oplog: "
                f"{exc.details.get('errmsg', exc) if exc.details else exc}"
            ) from exc
        raise


def _encode_token(token: Mapping[str, Any]) -> str:
    return _STREAM_PREFIX + base64.urlsafe_b64encode(bson.encode(token)).decode().rstrip("=")


def _decode_token(position: str) -> Mapping[str, Any]:
    if position.startswith(_STREAM_PREFIX):
        encoded = position[len(_STREAM_PREFIX) :]
        try:
            token = bson.decode(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, binascii.Error, bson.errors.BSONError):
            pass
        else:
            if "_data" in token:
                return token
    raise InvalidPosition(f"not a change-stream position of this store: {position[:40]!r}")


def _decode_seq(position: str) -> int:
    digits = position[len(_SEQ_PREFIX) :]
    if position.startswith(_SEQ_PREFIX) and digits.isascii() and digits.isdigit():
        return int(digits)
    raise InvalidPosition(f"not a change position of this store: {position[:40]!r}")

"""Change positions of the MongoDB store: what Watch resumes from.

A change is an event (one new distinct report) that its commit's last step marked
``applied``: by then its message reflects it, so Watch never shows a report whose message
update failed. Two feeds, chosen at start-up from the server's handshake:

* :class:`statusd.storage.mongo_stream.StreamFeed` on a replica set or a sharded cluster: one
  long-lived change stream per process on ``events``, following the updates that mark an
  event applied. Positions are the stream's resume tokens, so every statusd replica sees
  every replica's changes, in the order the cluster committed them. A position older than
  the oplog keeps raises :class:`InvalidPosition`.
* :class:`SequenceFeed` on a standalone server (which has no change streams, and neither has
  mongomock): each commit reserves a range of numbers from a counter document and stamps them
  on the events it marks applied; a reader sees numbers up to the end of the last commit
  *this process* finished, so no reader ever skips an event that is still being written.
  That is correct for one writer; Watch across several statusd replicas needs a replica set.
  An empty store stands at ``s0`` (before the first number), like SQLite's ``0``: a resume
  token issued before any commit names that position, and stays valid after restarts.
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
from pymongo.errors import OperationFailure

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage import mongo_docs as docs
from statusd.storage.base import Change, InvalidPosition, MessageFilter

Collection = AsyncCollection[docs.Document]

#: Server codes that mean "this resume point is gone or was never valid".
_LOST_POSITION_CODES: Final = frozenset({260, 280, 286})
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
        """The first of ``count`` numbers for the events a commit applies (None: not numbered)."""

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

    async def close(self) -> None:  # noqa: B027 (a feed that holds nothing open)
        """Releases what the feed holds open."""

    async def resolve(
        self,
        scanned: list[tuple[str, str]],
        query: MessageFilter,
        known: Mapping[str, docs.Document] | None = None,
    ) -> list[Change]:
        """Changes for scanned events (position, event ``_id``) that pass ``query``, each with
        its message's state as read now (which reflects it: only applied events are scanned).
        ``known`` holds event documents already read; the others are read here."""
        events = dict(known or {})
        missing = sorted({event for _, event in scanned} - set(events))
        if missing:
            found = await self.events.find({"_id": {"$in": missing}}).to_list(None)
            events.update((event["_id"], event) for event in found)
        keys = sorted({event["key"] for event in events.values()})
        messages = await self.messages.find({"_id": {"$in": keys}}).to_list(None)
        by_key = {document["_id"]: document for document in messages}
        changes = []
        for position, event_id in scanned:
            event = events.get(event_id)
            document = by_key.get(event["key"]) if event else None
            if event is None or document is None or not document["order_key"]:
                continue  # purged since
            status = docs.message_status(document)
            if query.matches(status):
                report = pb.DeliveryReport.FromString(bytes(event["report"]))
                changes.append(Change(position, report, status))
        return changes


class SequenceFeed(Feed):
    """Numbered events on a standalone server (see the module docstring)."""

    _COUNTER: Final = "event_seq"

    def __init__(self, events: Collection, messages: Collection, meta: Collection) -> None:
        super().__init__(events, messages, meta)
        self.visible = 0
        self.reserved = 0

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
        self.reserved = int(counter["value"])
        return self.reserved - count + 1

    def committed(self, last: int | None) -> None:
        """Every number reserved so far is now used or abandoned: commits are serialized, and
        a failed commit's events were numbered in its last step or will be by its retry."""
        self.visible = max(self.visible, self.reserved)

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
            scanned = [(_SEQ_PREFIX + str(event["seq"]), event["_id"]) for event in events]
            found += await self.resolve(scanned, query, {e["_id"]: e for e in events})
            start = events[-1]["seq"]
            if len(events) < limit:
                break
        return found[:limit]

    async def last_position(self) -> str | None:
        return _SEQ_PREFIX + str(self.visible)  # "s0" on an empty store: before the first


@contextlib.contextmanager
def lost_positions(after: str | None) -> Any:
    try:
        yield
    except OperationFailure as exc:
        if exc.code in _LOST_POSITION_CODES:
            raise InvalidPosition(
                f"change position {(after or 'start')[:40]!r} is no longer in the oplog: "
                f"{exc.details.get('errmsg', exc) if exc.details else exc}"
            ) from exc
        raise


def encode_token(token: Mapping[str, Any]) -> str:
    return _STREAM_PREFIX + base64.urlsafe_b64encode(bson.encode(token)).decode().rstrip("=")


def decode_token(position: str) -> Mapping[str, Any]:
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

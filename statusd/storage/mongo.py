"""The production store: MongoDB through PyMongo's async API (``pymongo.AsyncMongoClient``).

Collections (document shapes in :mod:`statusd.storage.mongo_docs`):

* ``messages``: one document per message key (``_id`` is the key; shard on
  ``{_id: "hashed"}``): the current report as protobuf bytes, its order key, the indexed
  scalar fields List filters on, ``first_seen``/``updated``, ``report_count``,
  ``terminal_mask`` and ``applied`` (a digest per counted report).
* ``events``: the history, one document per distinct report; ``_id`` is message key plus
  dedupe key, so the ``_id`` index is the dedupe index (shard on ``{key: "hashed"}``).
* ``quarantine``: authentic items that failed to parse, raw, with the reason.
* ``meta``: the change-position bookkeeping of :mod:`statusd.storage.mongo_changes`.

**One batch, a fixed number of round trips.** :meth:`MongoStore.commit` (1) inserts the
batch's events with one unordered ``insert_many``, and at the same time upserts a skeleton for
every message it touches with one unordered ``bulk_write`` (``$setOnInsert`` on ``_id``
only); duplicate-key errors of the insert are the duplicates. (2) When there are duplicates,
one ``find`` reads their *stored* content. (3) One unordered ``bulk_write`` applies every new
report, and every duplicate, to its message with two guarded updates each:

* "become current": filter ``{_id, order_key: {$lt: k}}``, ``$set`` the report, as an upsert.
  The message exists (step 1), so the upsert's insert fails with a duplicate-key error exactly
  when the filter did not match: that error, which names the operation's index, is how a
  report is told STALE rather than STORED without reading the message first.
* "count once": filter ``{_id, applied: {$ne: digest}}``, ``$push`` the digest, ``$inc``
  ``report_count``, ``$bit or`` the terminal bit, ``$max`` the update time.

plus one "fill if empty" update per message for recipient, client_ref and parent_message_id.
No update reads, computes and writes back; each is a single-document conditional update, so
several statusd replicas can commit to one database at once and the result is the fold of
the union of their reports: the current report is the maximum of the order key (a maximum
does not care about order), ``report_count`` counts each dedupe key once (the digest guard),
and the mask is an OR.

**Crash windows.** Nothing is acknowledged before all three steps succeed; a failure raises
:class:`StoreUnavailable`, the gateway answers 503, and the provider retries. A crash after
the insert and before step 3 leaves events that no message reflects yet. The retry finds them
as duplicates and still applies them, with the stored content (so the current report is
always one that is in the history); both guarded updates are idempotent, so applying a report
twice changes nothing and a message is never left behind its history once the retry lands.
``report_count`` stays exact because it only moves together with the digest that prevents a
second count. Reads skip a skeleton whose first report has not been applied (empty
``order_key``); Watch applies a report it sees before its message update with the pure model
(:func:`statusd.storage.mongo_docs.projected_status`).

**Durability and reads.** Write concern ``majority`` with journal; read concern ``majority``
and read preference ``primary``: a majority write is acknowledged only once it is in the
majority-committed snapshot, so any read issued after the acknowledgement sees it, and no read
sees a write that a failover could roll back.

**Retention.** TTL indexes on ``messages.updated_at``, ``events.stored_at`` and
``quarantine.stored_at`` (``DLRHUB_RETENTION_DAYS``); :meth:`MongoStore.purge` deletes the same
set on demand (statusd runs it hourly, as for SQLite). A message updated within the retention
keeps its document and count, while events older than the retention leave its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, Final, TypeVar

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient, ReadPreference, UpdateOne, WriteConcern
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage import mongo_docs as docs
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    Change,
    MessageFilter,
    Outcome,
    Page,
    Store,
    StoreUnavailable,
)
from statusd.storage.mongo_changes import Feed, SequenceFeed, StreamFeed

log = logging.getLogger(__name__)

Client = AsyncMongoClient[docs.Document]
_T = TypeVar("_T")

_DUPLICATE_KEY: Final = 11000
_INDEX_CONFLICTS: Final = frozenset({85, 86})  # IndexOptionsConflict, IndexKeySpecsConflict
_PING_TIMEOUT_SECONDS: Final = 2.0


def mongo_client(uri: str, *, server_selection_timeout: float = 5.0) -> Client:
    """A client for ``uri`` (parsed now, connected lazily); raises on a malformed URI, and on
    an option PyMongo would otherwise only warn about and ignore."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
            appname="dlrhub-statusd",
            retryWrites=True,
        )


def describe(exc: BaseException) -> str:
    """A PyMongo error in one line: no topology dump, no credentials (PyMongo prints none)."""
    text = str(exc).split(", Timeout:", 1)[0].split(", full error:", 1)[0]
    return f"{type(exc).__name__}: {text[:300]}"


def now_micros() -> int:
    return time.time_ns() // 1_000


class MongoStore(Store):
    """The MongoDB store (see the module docstring)."""

    name = "mongodb"

    def __init__(
        self,
        client: Client,
        *,
        database: str = "dlrhub",
        retention_days: int = 90,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self.db = client.get_database(
            database,
            write_concern=WriteConcern(w="majority", j=True),
            read_concern=ReadConcern("majority"),
            read_preference=ReadPreference.PRIMARY,
        )
        self.database = database
        self._messages = self.db.get_collection("messages")
        self._events = self.db.get_collection("events")
        self._quarantine = self.db.get_collection("quarantine")
        self._meta = self.db.get_collection("meta")
        self._ttl_seconds = retention_days * 86_400
        self._timeout = timeout
        self._feed: Feed | None = None
        self._lock = asyncio.Lock()

    # -- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self, action: str, timeout: float | None = None) -> Iterator[None]:
        """Bounds the operations inside by the store's timeout and maps driver errors."""
        try:
            with pymongo.timeout(timeout or self._timeout):
                yield
        except PyMongoError as exc:
            raise StoreUnavailable(f"mongodb {action} failed: {describe(exc)}") from exc

    def _opened(self) -> Feed:
        if self._feed is None:
            raise StoreUnavailable("mongodb store is not open yet")
        return self._feed

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        with self._operation("open"):
            hello = await self._client.admin.command("hello")
            replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
            feed_class = StreamFeed if replicated else SequenceFeed
            feed = feed_class(self._events, self._messages, self._meta)
            await self._create_indexes()
            await feed.open()
        self._feed = feed
        log.info(
            "mongodb store open",
            extra={
                "database": self.database,
                "changes": "change stream" if replicated else "single-writer sequence",
            },
        )

    async def _create_indexes(self) -> None:
        for collection, name, keys, options in docs.INDEXES:
            settings = dict(options)
            if settings.pop("ttl", False):
                settings["expireAfterSeconds"] = self._ttl_seconds
            target = self.db.get_collection(collection)
            try:
                await target.create_index(keys, name=name, **settings)
            except OperationFailure as exc:
                if exc.code not in _INDEX_CONFLICTS or "expireAfterSeconds" not in settings:
                    raise
                # The retention changed: adjust the TTL index in place.
                await self.db.command(
                    {
                        "collMod": collection,
                        "index": {"name": name, "expireAfterSeconds": self._ttl_seconds},
                    }
                )

    async def close(self) -> None:
        self._feed = None
        await self._client.close()

    async def ping(self) -> None:
        self._opened()
        with self._operation("ping", _PING_TIMEOUT_SECONDS):
            await self._client.admin.command("ping")

    # -- writes --------------------------------------------------------------------------

    async def commit(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> list[Outcome]:
        feed = self._opened()
        async with self._lock:
            with self._operation("commit"):
                return await self._commit(feed, reports, quarantined)

    async def _commit(
        self,
        feed: Feed,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem],
    ) -> list[Outcome]:
        now = now_micros()
        stamp = docs.as_datetime(now)
        outcomes: list[Outcome] = [DUPLICATE] * len(reports)
        firsts: dict[str, int] = {}  # an event's _id -> its first place in the batch
        for index, report in enumerate(reports):
            firsts.setdefault(docs.event_id_of(report), index)
        fresh = sorted(firsts.values())
        first_seq = await feed.reserve(len(fresh)) if fresh else None
        events = [
            docs.event_document(
                reports[index],
                reports[index].SerializeToString(),
                stamp,
                None if first_seq is None else first_seq + number,
            )
            for number, index in enumerate(fresh)
        ]
        touched = {docs.message_id_of_report(reports[index]): reports[index] for index in fresh}
        known, _ = await _both(self._insert_events(events), self._ensure(touched, now))
        duplicates = {fresh[number] for number in known}
        stored = await self._stored([events[number]["_id"] for number in known])
        to_apply: list[tuple[int | None, pb.DeliveryReport]] = []
        for number, index in enumerate(fresh):
            if index not in duplicates:
                to_apply.append((index, reports[index]))
            elif events[number]["_id"] in stored:  # re-apply: heals an interrupted commit
                to_apply.append((None, stored[events[number]["_id"]]))
        current = await self._apply(to_apply, now)
        for index in fresh:
            if index not in duplicates:
                outcomes[index] = STORED if index in current else STALE
        if quarantined:
            await self._quarantine.insert_many(
                [_quarantine_document(item, stamp) for item in quarantined], ordered=False
            )
        feed.committed(None if first_seq is None else first_seq + len(fresh) - 1)
        return outcomes

    async def _insert_events(self, events: list[docs.Document]) -> list[int]:
        """Inserts the events; returns the positions that were already stored."""
        if not events:
            return []
        try:
            await self._events.insert_many(events, ordered=False)
        except BulkWriteError as exc:
            return sorted(_duplicate_key_errors(exc))
        return []

    async def _ensure(self, touched: dict[str, pb.DeliveryReport], now: int) -> None:
        """Creates the missing message documents, so the guarded upserts below never race a
        creation (an upsert on ``_id`` alone is retried by the server on a key conflict)."""
        if not touched:
            return
        operations = [
            UpdateOne({"_id": message}, {"$setOnInsert": docs.skeleton(report, now)}, upsert=True)
            for message, report in touched.items()
        ]
        try:
            await self._messages.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            _duplicate_key_errors(exc)  # a conflict means it exists: all this step needs

    async def _stored(self, ids: list[str]) -> dict[str, pb.DeliveryReport]:
        if not ids:
            return {}
        found = await self._events.find({"_id": {"$in": ids}}, {"report": 1}).to_list(None)
        return {
            event["_id"]: pb.DeliveryReport.FromString(bytes(event["report"])) for event in found
        }

    async def _apply(
        self, to_apply: list[tuple[int | None, pb.DeliveryReport]], now: int
    ) -> set[int]:
        """Applies reports to their messages; returns the batch indexes that became current."""
        operations: list[UpdateOne] = []
        becomes_current: dict[int, int] = {}  # operation index -> batch index
        fills: dict[tuple[str, str], str] = {}
        stamp = docs.as_datetime(now)
        for index, report in to_apply:
            message = docs.message_id_of_report(report)
            key = model.order_key(report)
            if index is not None:
                becomes_current[len(operations)] = index
            on_insert = docs.skeleton(report, now)
            del on_insert["status"], on_insert["order_key"]
            operations.append(
                UpdateOne(
                    {"_id": message, "order_key": {"$lt": key}},
                    {
                        "$set": {
                            "status": report.status,
                            "order_key": key,
                            "report": report.SerializeToString(),
                        },
                        "$setOnInsert": on_insert,
                    },
                    upsert=True,
                )
            )
            count: docs.Document = {
                "$push": {"applied": docs.applied_digest(report.event_id)},
                "$inc": {"report_count": 1},
                "$max": {"updated": now, "updated_at": stamp},
            }
            bit = model.terminal_bit(report.status)
            if bit:
                count["$bit"] = {"terminal_mask": {"or": bit}}
            digest = docs.applied_digest(report.event_id)
            operations.append(UpdateOne({"_id": message, "applied": {"$ne": digest}}, count))
            for field in docs.FILLED_FIELDS:
                if getattr(report, field):
                    fills.setdefault((message, field), getattr(report, field))
        operations += [
            UpdateOne({"_id": message, field: ""}, {"$set": {field: value}})
            for (message, field), value in fills.items()
        ]
        if not operations:
            return set()
        try:
            await self._messages.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            missed = _duplicate_key_errors(exc)
        else:
            missed = set()
        return {index for op, index in becomes_current.items() if op not in missed}

    async def purge(self, before_micros: int) -> int:
        self._opened()
        cutoff = docs.as_datetime(before_micros)
        with self._operation("purge"):
            purged = await self._messages.delete_many({"updated": {"$lt": before_micros}})
            await self._events.delete_many({"stored_at": {"$lt": cutoff}})
            await self._quarantine.delete_many({"stored_at": {"$lt": cutoff}})
        return purged.deleted_count

    async def release(self, ids: Sequence[str]) -> int:
        self._opened()
        valid = [ObjectId(item) for item in ids if ObjectId.is_valid(item)]
        if not valid:
            return 0
        with self._operation("release"):
            released = await self._quarantine.delete_many({"_id": {"$in": valid}})
        return released.deleted_count

    # -- reads ---------------------------------------------------------------------------

    async def _history(self, messages: list[str]) -> dict[str, list[pb.DeliveryReport]]:
        found = await self._events.find(
            {"key": {"$in": messages}}, {"key": 1, "report": 1}
        ).to_list(None)
        history: dict[str, list[pb.DeliveryReport]] = {}
        for event in found:
            report = pb.DeliveryReport.FromString(bytes(event["report"]))
            history.setdefault(event["key"], []).append(report)
        return history

    async def get(self, key: pb.MessageKey, *, full: bool = False) -> pb.MessageStatus | None:
        found = await self.batch_get([key], full=full)
        return found[0] if found else None

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool = False
    ) -> list[pb.MessageStatus]:
        self._opened()
        wanted = [docs.message_id_of_key(key) for key in keys]
        with self._operation("read"):
            found = await self._messages.find(
                {"_id": {"$in": wanted}, "order_key": {"$gt": ""}}, docs.MESSAGE_FIELDS
            ).to_list(None)
            by_id = {document["_id"]: document for document in found}
            history = await self._history(sorted(by_id)) if full and by_id else {}
        return [
            docs.message_status(by_id[message], history.get(message, []))
            for message in wanted
            if message in by_id
        ]

    async def list_messages(
        self, query: MessageFilter, *, after: str | None, limit: int, full: bool = False
    ) -> Page:
        self._opened()
        selection = docs.filter_query(query)
        if after is not None:
            selection = {"$and": [selection, docs.cursor_query(after)]}
        with self._operation("list"):
            found = (
                await self._messages.find(selection, docs.MESSAGE_FIELDS)
                .sort(docs.LIST_ORDER)
                .limit(limit + 1)
                .to_list(None)
            )
            more = len(found) > limit
            found = found[:limit]
            history = await self._history([d["_id"] for d in found]) if full and found else {}
        items = [docs.message_status(d, history.get(d["_id"], [])) for d in found]
        return Page(items=items, cursor=docs.encode_cursor(found[-1]) if more and found else None)

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        feed = self._opened()
        with self._operation("changes"):
            return await feed.changes(query, after, limit)

    async def wait_for_changes(self, after: str | None, timeout: float) -> None:
        if self._feed is None:
            await asyncio.sleep(timeout)
        else:
            await self._feed.wait(after, timeout)

    async def last_position(self) -> str | None:
        feed = self._opened()
        with self._operation("changes"):
            return await feed.last_position()

    async def quarantined(self, *, after: str | None, limit: int) -> list[pb.QuarantinedItem]:
        self._opened()
        selection = {"_id": {"$gt": ObjectId(after)}} if after and ObjectId.is_valid(after) else {}
        with self._operation("read"):
            found = await self._quarantine.find(selection).sort("_id").limit(limit).to_list(None)
        items = []
        for document in found:
            item = pb.QuarantinedItem.FromString(bytes(document["item"]))
            item.id = str(document["_id"])
            items.append(item)
        return items


def _quarantine_document(item: pb.QuarantinedItem, stamp: Any) -> docs.Document:
    return {
        "provider": item.provider,
        "account": item.account,
        "reason": item.reason,
        "item": item.SerializeToString(),
        "stored_at": stamp,
    }


def _duplicate_key_errors(exc: BulkWriteError) -> set[int]:
    """The operation indexes that failed on a duplicate key; any other failure (including a
    write concern that was not met) means the batch is not durable: StoreUnavailable."""
    details = exc.details or {}
    concern = details.get("writeConcernErrors") or []
    others = [e for e in details.get("writeErrors", []) if e.get("code") != _DUPLICATE_KEY]
    if concern or others:
        first = (concern or others)[0]
        raise StoreUnavailable(f"mongodb write failed: {first.get('errmsg', first)}") from exc
    return {int(error["index"]) for error in details.get("writeErrors", [])}


async def _both(first: Awaitable[_T], second: Awaitable[Any]) -> tuple[_T, Any]:
    """Runs two independent writes at once; waits for both before raising either's error."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results[0], results[1]  # type: ignore[return-value]

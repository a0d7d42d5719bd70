"""The production store: MongoDB through PyMongo's async API (``pymongo.AsyncMongoClient``).

Collections (document shapes in :mod:`statusd.storage.mongo_docs`):

* ``messages``: one document per message key (``_id`` is the key; shard on
  ``{_id: "hashed"}``): the current report as protobuf bytes, its order key, the indexed
  scalar fields List filters on, ``first_seen``/``updated``, ``report_count``,
  ``terminal_mask`` and ``counting`` (a bounded set of short-lived counting markers).
* ``events``: the history, one document per distinct report; ``_id`` is message key plus
  dedupe key, so the ``_id`` index is the dedupe index (shard on ``{key: "hashed"}``);
  ``applied`` records that its message counted it (and makes it a change for Watch).
* ``quarantine``: authentic items that failed to parse, raw, with the reason and a unique
  ``digest`` (a retried insert is a no-op).
* ``meta``: the change-position bookkeeping of :mod:`statusd.storage.mongo_changes`.

**Writes** (:mod:`statusd.storage.mongo_commit`): a group-committed batch takes a fixed
number of requests, whatever its size, each idempotent; every update is a single-document
conditional update, so several statusd replicas can commit to one database at once; a commit
interrupted at any request is never acknowledged, and its retry converges.

**Start-up** (:mod:`statusd.storage.mongo_server`): ``hello``, or ``isMaster`` on a server
before 4.4.2, tells a replica set (change streams: :mod:`statusd.storage.mongo_stream`) from
a standalone server (numbered changes: :mod:`statusd.storage.mongo_changes`).

**Durability and reads.** Write concern ``majority`` with journal; read concern ``majority``
and read preference ``primary``: a majority write is acknowledged only once it is in the
majority-committed snapshot, so any read issued after the acknowledgement sees it, and no read
sees a write that a failover could roll back.

**Retention.** TTL indexes on ``messages.updated_at``, ``events.stored_at`` and
``quarantine.stored_at`` (``DLRHUB_RETENTION_DAYS``); :meth:`MongoStore.purge` deletes the same
set on demand (statusd runs it hourly, as for SQLite) and removes the counting markers that
are no longer needed. A message updated within the retention
keeps its document and count, while events older than the retention leave its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

import pymongo
from bson import ObjectId
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient, ReadPreference, WriteConcern
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.stats import summarize
from statusd.storage import mongo_docs as docs
from statusd.storage import mongo_stats
from statusd.storage.base import (
    Change,
    Committed,
    Due,
    MessageFilter,
    Page,
    Store,
    StoreUnavailable,
)
from statusd.storage.mongo_changes import Feed, SequenceFeed
from statusd.storage.mongo_commit import BatchWriter, now_micros, sweep_markers
from statusd.storage.mongo_server import server_info
from statusd.storage.mongo_stream import StreamFeed

if TYPE_CHECKING:
    from statusd.stats import StatsQuery, StatsResult

log = logging.getLogger(__name__)

Client = AsyncMongoClient[docs.Document]
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
        except (PyMongoError, InvalidDocument) as exc:  # InvalidDocument: the 16 MiB limit
            raise StoreUnavailable(f"mongodb {action} failed: {describe(exc)}") from exc

    def _opened(self) -> Feed:
        if self._feed is None:
            raise StoreUnavailable("mongodb store is not open yet")
        return self._feed

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        with self._operation("open"):
            server = await server_info(self._client)
            replicated = server.replicated
            feed_class: type[Feed] = StreamFeed if replicated else SequenceFeed
            feed = feed_class(self._events, self._messages, self._meta)
            await self._create_indexes()
            await feed.open()
        self._feed = feed
        log.info(
            "mongodb store open",
            extra={
                "database": self.database,
                "server_version": server.version,
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
        feed, self._feed = self._feed, None
        if feed is not None:
            with contextlib.suppress(PyMongoError):
                await feed.close()
        await self._client.close()

    async def ping(self) -> None:
        self._opened()
        with self._operation("ping", _PING_TIMEOUT_SECONDS):
            await self._client.admin.command("ping")

    # -- writes --------------------------------------------------------------------------

    async def commit_batch(
        self,
        reports: Sequence[pb.DeliveryReport],
        quarantined: Sequence[pb.QuarantinedItem] = (),
    ) -> Committed:
        feed = self._opened()
        async with self._lock:
            with self._operation("commit"):
                writer = BatchWriter(self._events, self._messages, self._quarantine, feed)
                return await writer.commit(reports, quarantined)

    async def purge(self, before_micros: int) -> int:
        self._opened()
        cutoff = docs.as_datetime(before_micros)
        with self._operation("purge"):
            purged = await self._messages.delete_many({"updated": {"$lt": before_micros}})
            await self._events.delete_many({"stored_at": {"$lt": cutoff}})
            await self._quarantine.delete_many({"stored_at": {"$lt": cutoff}})
            await sweep_markers(self._messages, self._events, docs.as_datetime(now_micros()))
        return purged.deleted_count

    async def delivery_stats(self, query: StatsQuery) -> StatsResult:
        self._opened()
        with self._operation("stats"):
            cursor = await self._messages.aggregate(mongo_stats.pipeline(query))
            cells = mongo_stats.rows_of(query, await cursor.to_list(None))
        return summarize(cells, len(query.group_by))

    async def due_timeouts(self, now_micros: int, limit: int) -> list[Due]:
        self._opened()
        selection = {**docs.AWAITING, "report_deadline": {"$gte": 0, "$lte": now_micros}}
        with self._operation("read"):
            found = (
                await self._messages.find(
                    selection, {"provider": 1, "account": 1, "message_id": 1, "report_deadline": 1}
                )
                .sort("report_deadline")
                .limit(limit)
                .to_list(None)
            )
        return [
            Due((d["provider"], d["account"], d["message_id"]), d["report_deadline"]) for d in found
        ]

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

    async def count_quarantined(self) -> int:
        self._opened()
        with self._operation("read"):
            return int(await self._quarantine.count_documents({}))

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

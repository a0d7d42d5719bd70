"""An async adapter over mongomock: the part of ``pymongo.AsyncMongoClient`` the store uses.

mongomock is synchronous and, with current PyMongo, cannot run ``bulk_write`` itself (PyMongo's
``UpdateOne`` passes a ``sort`` argument mongomock's bulk builder rejects); it has no ``$bit``
update operator, no ``hello`` command and no change streams. This adapter fills exactly those
gaps, leaving every query, update operator, unique ``_id`` check and duplicate-key error to
mongomock itself:

* ``bulk_write`` and ``insert_many`` run one operation at a time through mongomock and collect
  its duplicate-key errors into a PyMongo ``BulkWriteError`` with the operation's index, as a
  server does for an unordered batch. Between operations they yield to the event loop, so
  other store instances' writes interleave with a batch as they would on a real server.
* ``aggregate`` runs mongomock's own pipeline and returns its results as a cursor, as
  PyMongo's async API does (no faults: a read of statistics changes nothing).
* ``$bit: {field: {or: n}}`` is applied right after the rest of the update (nothing can run in
  between: mongomock calls do not yield).
* The BSON size limit (``max_bson_size``, 16 MiB as on a server): an insert over it raises
  ``DocumentTooLarge`` (as the driver does before sending), an update whose result would be
  over it fails with the server's write error (code 17419) and changes nothing.
* An index that exists with other options fails with the server's code (85), and ``collMod``
  changes a TTL index's ``expireAfterSeconds``.
* ``hello`` (``isMaster`` for a server ``version`` before 4.4.2, which has no ``hello``) answers
  as a standalone server, or, with ``replica_set=True``, as a replica-set primary, and then
  ``watch()`` emulates a change stream: every insert and every update that changed a document
  through the adapter is appended to an in-memory oplog shared by all clients of one
  :class:`MockServer` as a change event (``operationType``, ``documentKey``,
  ``updateDescription.updatedFields``, ``fullDocument`` for inserts); a ``$match`` stage is
  applied by mongomock's own filter, a ``$project`` stage keeps the named fields; resume
  tokens are ``{"_data": <hex entry number>}``; :meth:`MockServer.forget_changes` truncates
  the oplog so a stale token fails as a real one does (code 286). ``buildInfo`` answers the
  ``version``. (The stream itself is in :mod:`tests.helpers.mongomock_stream`.)

A :class:`MockServer` can also be taken down (every call then fails as an unreachable server
does) and can fail a chosen collection method once after a number of operations, to cut a
commit at a chosen point.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import bson
import mongomock
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)
from pymongo.results import DeleteResult, InsertManyResult, UpdateResult

if TYPE_CHECKING:
    from tests.helpers.mongomock_stream import MockChangeStream

Document = dict[str, Any]


@dataclass
class _Fault:
    collection: str
    method: str
    after: int  # operations of the call that succeed before it fails
    skip: int  # matching calls that go through before the failing one


class MockServer:
    """One in-memory MongoDB shared by any number of adapter clients."""

    def __init__(
        self,
        *,
        replica_set: bool = False,
        version: str = "8.0.4",
        max_bson_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.backend: Any = mongomock.MongoClient()
        self.replica_set = replica_set
        self.version = version
        self.max_bson_size = max_bson_size
        self.down = False
        self.oplog: list[tuple[str, Document]] = []
        self.oplog_floor = 0  # entries before this were "rolled off"
        self.changed = asyncio.Condition()
        self.faults: list[_Fault] = []
        self.calls: Counter[tuple[str, str]] = Counter()

    def client(self) -> AsyncMongoClient[dict[str, Any]]:
        """A new client, typed as the real one: the store cannot tell them apart."""
        return cast(AsyncMongoClient[dict[str, Any]], MockClient(self))

    def fail_once(self, collection: str, method: str, *, after: int = 0, skip: int = 0) -> None:
        """A ``method`` call on ``collection`` (the next one, or the one after ``skip`` more)
        fails as a lost connection does, after ``after`` of its operations went through."""
        self.faults.append(_Fault(collection, method, after, skip))

    def forget_changes(self) -> None:
        """Simulates an oplog that rolled over: every earlier resume token is lost."""
        self.oplog_floor = len(self.oplog)

    def check(self, collection: str = "", method: str = "") -> _Fault | None:
        """Counts a call; raises when the server is down; returns a fault due now."""
        if self.down:
            raise ServerSelectionTimeoutError("mock server is down, Timeout: 0.1s")
        self.calls[(collection, method)] += 1
        for fault in self.faults:
            if (fault.collection, fault.method) == (collection, method):
                if fault.skip:
                    fault.skip -= 1
                    return None
                self.faults.remove(fault)
                return fault
        return None

    async def record(self, namespace: str, change: Document) -> None:
        """Appends a change event (without its ``_id``, the token) to the oplog."""
        self.oplog.append((namespace, copy.deepcopy(change)))
        async with self.changed:
            self.changed.notify_all()


def _lost(fault: _Fault | None, done: int) -> None:
    if fault is not None and done >= fault.after:
        raise AutoReconnect(f"connection lost during {fault.method} (injected)")


class MockClient:
    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.admin = MockDatabase(server, "admin")

    def get_database(self, name: str, **_options: Any) -> MockDatabase:
        return MockDatabase(self.server, name)

    async def drop_database(self, name: str) -> None:
        self.server.backend.drop_database(name)

    async def close(self) -> None:
        return None


class MockDatabase:
    def __init__(self, server: MockServer, name: str) -> None:
        self.server = server
        self.name = name
        self.backend = server.backend.get_database(name)

    def get_collection(self, name: str) -> MockCollection:
        return MockCollection(self, name)

    async def command(self, command: str | Mapping[str, Any]) -> Document:
        self.server.check()
        name = command if isinstance(command, str) else next(iter(command))
        if name == "ping":
            return {"ok": 1.0}
        if name in ("hello", "isMaster"):
            major, minor, patch = (int(part) for part in self.server.version.split("."))
            numbers = (major, minor, patch)
            if name == "hello" and numbers < (4, 4, 2):
                raise OperationFailure("no such command: 'hello'", code=59)
            wires = {(4, 2): 8, (4, 4): 9, (5, 0): 13, (6, 0): 17, (7, 0): 21}
            wire = wires.get((major, minor), 25)
            answer: Document = {"maxWireVersion": wire, "ok": 1.0}
            answer["isWritablePrimary" if name == "hello" else "ismaster"] = True
            if self.server.replica_set:
                answer["setName"] = "rs0"
            return answer
        if name == "buildInfo":
            return {"version": self.server.version, "ok": 1.0}
        if name == "collMod" and isinstance(command, Mapping):  # a TTL change, as the store sends
            collection = self.backend.get_collection(command["collMod"])
            index = command["index"]
            keys = collection.index_information()[index["name"]]["key"]
            collection.drop_index(index["name"])
            collection.create_index(
                keys, name=index["name"], expireAfterSeconds=index["expireAfterSeconds"]
            )
            return {"ok": 1.0}
        raise OperationFailure(f"command {name!r} is not emulated", code=59)


class MockCollection:
    def __init__(self, database: MockDatabase, name: str) -> None:
        self.server = database.server
        self.name = name
        self.namespace = f"{database.name}.{name}"
        self.backend = database.backend.get_collection(name)

    async def create_index(self, keys: Sequence[tuple[str, int]], **options: Any) -> str:
        self.server.check(self.name, "create_index")
        try:
            return str(self.backend.create_index(list(keys), **options))
        except OperationFailure as exc:
            if "already exists with different options" not in str(exc):
                raise
            raise OperationFailure(str(exc), code=85) from exc  # IndexOptionsConflict

    async def insert_many(self, documents: Sequence[Document], ordered: bool = True) -> Any:
        fault = self.server.check(self.name, "insert_many")
        for document in documents:
            size = len(bson.encode(document))
            if size > self.server.max_bson_size:
                raise DocumentTooLarge(
                    f"BSON document too large ({size} bytes) - the connected server supports "
                    f"BSON document sizes up to {self.server.max_bson_size} bytes."
                )
        errors, inserted = [], []
        for index, document in enumerate(documents):
            _lost(fault, index)
            try:
                key = self.backend.insert_one(copy.deepcopy(document)).inserted_id
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": str(exc)})
                if ordered:
                    break
            else:
                inserted.append(key)
                await self.server.record(
                    self.namespace,
                    {
                        "operationType": "insert",
                        "documentKey": {"_id": key},
                        "fullDocument": {**document, "_id": key},
                    },
                )
            await asyncio.sleep(0)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(inserted)})
        return InsertManyResult(inserted, acknowledged=True)

    async def bulk_write(self, operations: Sequence[UpdateOne], ordered: bool = True) -> Any:
        fault = self.server.check(self.name, "bulk_write")
        errors = []
        for index, operation in enumerate(operations):
            _lost(fault, index)
            assert isinstance(operation, UpdateOne), "the store only sends UpdateOne"
            try:
                selector, update = cast(Document, operation._filter), cast(Document, operation._doc)
                result = self._update_one(selector, update, bool(operation._upsert))
                if result.modified_count and "$set" in update:
                    await self._record_update(selector["_id"], update["$set"])
            except (DuplicateKeyError, WriteError) as exc:
                errors.append({"index": index, "code": exc.code, "errmsg": str(exc)})
                if ordered:
                    break
            await asyncio.sleep(0)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})
        return None

    async def _record_update(self, key: Any, fields: Document) -> None:
        await self.server.record(
            self.namespace,
            {
                "operationType": "update",
                "documentKey": {"_id": key},
                "updateDescription": {"updatedFields": fields, "removedFields": []},
            },
        )

    def _update_one(self, selector: Document, update: Document, upsert: bool) -> Any:
        before = self.backend.find_one({"_id": selector["_id"]})
        result = self._apply_update(selector, update, upsert)
        after = self.backend.find_one({"_id": selector["_id"]})
        if after is not None and len(bson.encode(after)) > self.server.max_bson_size:
            if before is None:
                self.backend.delete_one({"_id": selector["_id"]})
            else:
                self.backend.replace_one({"_id": selector["_id"]}, before)
            raise WriteError(
                f"Resulting document after update is larger than {self.server.max_bson_size}",
                code=17419,
            )
        return result

    def _apply_update(self, selector: Document, update: Document, upsert: bool) -> Any:
        bits = update.get("$bit", {})
        rest = {operator: value for operator, value in update.items() if operator != "$bit"}
        result = self.backend.update_one(selector, rest, upsert=upsert)
        if bits and (result.matched_count or result.upserted_id is not None):
            target = result.upserted_id if result.upserted_id is not None else selector["_id"]
            stored = self.backend.find_one({"_id": target}) or {}
            values = {}
            for field, operation in bits.items():
                assert set(operation) == {"or"}, "only $bit or is emulated"
                values[field] = int(stored.get(field, 0)) | int(operation["or"])
            self.backend.update_one({"_id": target}, {"$set": values})
        return result

    async def update_one(self, selector: Document, update: Document, upsert: bool = False) -> Any:
        self.server.check(self.name, "update_one")
        result = self._update_one(selector, update, upsert)
        return UpdateResult(result.raw_result, acknowledged=True)

    async def find_one(self, selector: Document | None = None, *args: Any) -> Document | None:
        self.server.check(self.name, "find_one")
        found: Document | None = self.backend.find_one(selector or {}, *args)
        return found

    async def find_one_and_update(
        self, selector: Document, update: Document, **options: Any
    ) -> Any:
        self.server.check(self.name, "find_one_and_update")
        return self.backend.find_one_and_update(selector, update, **options)

    async def count_documents(self, selector: Document) -> int:
        self.server.check(self.name, "count_documents")
        return int(self.backend.count_documents(selector))

    def find(self, selector: Document | None = None, projection: Any = None) -> MockCursor:
        return MockCursor(self, self.backend.find(selector or {}, projection))

    async def aggregate(self, pipeline: Sequence[Document]) -> MockCommandCursor:
        """mongomock's own aggregation, as PyMongo's async API returns it (a cursor)."""
        self.server.check(self.name, "aggregate")
        return MockCommandCursor(list(self.backend.aggregate(list(pipeline))))

    async def delete_many(self, selector: Document) -> DeleteResult:
        self.server.check(self.name, "delete_many")
        result = self.backend.delete_many(selector)
        return DeleteResult(result.raw_result, acknowledged=True)

    async def watch(
        self,
        pipeline: Sequence[Document] | None = None,
        resume_after: Mapping[str, Any] | None = None,
        max_await_time_ms: int | None = None,
        batch_size: int | None = None,
    ) -> MockChangeStream:
        from tests.helpers.mongomock_stream import MockChangeStream

        self.server.check(self.name, "watch")
        if not self.server.replica_set:
            raise OperationFailure(
                "The $changeStream stage is only supported on replica sets", code=40573
            )
        start = len(self.server.oplog)
        if resume_after is not None:
            start = int(str(resume_after["_data"]), 16)
            if start < self.server.oplog_floor:
                raise OperationFailure("the resume point may no longer be in the oplog", code=286)
            if start > len(self.server.oplog):
                raise OperationFailure("cannot resume stream; token not found", code=280)
        return MockChangeStream(
            self, list(pipeline or []), start, (max_await_time_ms or 1000) / 1000
        )


class MockCommandCursor:
    """The result of :meth:`MockCollection.aggregate`."""

    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    async def to_list(self, length: int | None = None) -> list[Document]:
        return self.documents if length is None else self.documents[:length]


class MockCursor:
    def __init__(self, collection: MockCollection, cursor: Any) -> None:
        self.collection = collection
        self.cursor = cursor

    def sort(self, key: Any, direction: int | None = None) -> MockCursor:
        self.cursor = self.cursor.sort(key, direction) if direction else self.cursor.sort(key)
        return self

    def limit(self, count: int) -> MockCursor:
        self.cursor = self.cursor.limit(count)
        return self

    async def to_list(self, length: int | None = None) -> list[Document]:
        _lost(self.collection.server.check(self.collection.name, "find"), 0)
        found = list(self.cursor)
        return found if length is None else found[:length]

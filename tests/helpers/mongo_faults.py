"""A fault-injecting double of the MongoDB client layer the store uses.

:class:`FaultClient` wraps a client of :mod:`tests.helpers.mongomock_async` (databases,
collections, cursors: the ``AsyncMongoClient`` surface :class:`statusd.storage.mongo.MongoStore`
calls) and, when a :class:`FaultPlan` says so, makes one request fail the way a replica set
makes it fail, raising PyMongo's own exception types:

* ``write concern``: the write is applied, then the acknowledgement reports that the write
  concern was not met (``BulkWriteError`` with ``writeConcernErrors`` for bulk writes and
  inserts, ``WriteConcernError`` for single writes). Reads have no write concern.
* ``step-down``: the primary steps down half-way (``NotPrimaryError``, NotWritablePrimary):
  the first half of a bulk write or insert is applied, the rest is not; a single operation
  fails before it is applied.
* ``network timeout``: the request is applied and its reply is lost (``NetworkTimeout``).
* ``16 MiB``: the driver refuses to send a request over the BSON size limit
  (``DocumentTooLarge``): nothing is applied.

With ``before_write=True`` every fault is raised before the request takes effect (a step-down
before the write, a connection lost before the request was sent).

The commit steps are named in :data:`COMMIT_STEPS` by the request that carries them (which
call of which collection method after the plan was armed), so a test can fail any step of a
group commit with any fault.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

from pymongo import AsyncMongoClient
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    NetworkTimeout,
    NotPrimaryError,
    WriteConcernError,
)

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.storage.base import Change, Committed, MessageFilter, Page, StoreUnavailable
from statusd.storage.mongo import MongoStore
from tests.helpers.mongomock_async import MockClient, MockCollection, MockCursor, MockDatabase

_T = TypeVar("_T")

WRITE_CONCERN: Final = "write concern"
STEP_DOWN: Final = "step-down"
NETWORK_TIMEOUT: Final = "network timeout"
TOO_LARGE: Final = "16 MiB"
FAULTS: Final = (WRITE_CONCERN, STEP_DOWN, NETWORK_TIMEOUT, TOO_LARGE)

_WRITES: Final = frozenset({"insert_many", "bulk_write", "find_one_and_update", "update_one"})
_BULK: Final = frozenset({"insert_many", "bulk_write"})
_CONCERN_ERROR: Final = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
    "errInfo": {"wtimeout": True},
}


@dataclass(frozen=True)
class Step:
    """One request of a group commit: the ``nth`` call of ``collection.method`` in it."""

    name: str
    collection: str
    method: str
    nth: int = 0
    standalone_only: bool = False


#: Every request of a group commit, in the order the store sends them.
COMMIT_STEPS: Final = (
    Step("insert events", "events", "insert_many"),
    Step("create messages", "messages", "bulk_write"),
    Step("insert quarantine", "quarantine", "insert_many"),
    Step("read duplicates", "events", "find"),
    Step("apply reports", "messages", "bulk_write", nth=1),
    Step("reserve numbers", "meta", "find_one_and_update", standalone_only=True),
    Step("mark applied", "events", "bulk_write"),
)


def applies(fault: str, step: Step) -> bool:
    """Whether ``fault`` can happen to ``step``'s request (reads have no write concern)."""
    return fault != WRITE_CONCERN or step.method in _WRITES


@dataclass
class FaultPlan:
    """Which request fails, and how. :meth:`arm` before the operation under test."""

    armed: list[tuple[Step, str]] = field(default_factory=list)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired: list[tuple[str, str]] = field(default_factory=list)  # (step name, fault)
    before_write: bool = False
    #: Called before every request: ``(collection, method) -> (step, fault)`` to inject.
    chooser: Callable[[str, str], tuple[Step, str] | None] | None = None

    def arm(self, step: Step, fault: str) -> None:
        """Fails ``step``'s request (counted from now) once with ``fault``."""
        assert applies(fault, step), f"{fault} cannot happen to {step.name}"
        self.calls.clear()
        self.armed.append((step, fault))

    def due(self, collection: str, method: str) -> str | None:
        """Counts a request; the fault to inject into it, if any."""
        number = self.calls[(collection, method)]
        self.calls[(collection, method)] += 1
        for step, fault in self.armed:
            if (step.collection, step.method, step.nth) == (collection, method, number):
                self.armed.remove((step, fault))
                self.fired.append((step.name, fault))
                return fault
        if self.chooser is not None and (chosen := self.chooser(collection, method)):
            self.fired.append((chosen[0].name, chosen[1]))
            return chosen[1]
        return None


class FaultClient:
    """The double: a client whose requests fail as the plan says."""

    def __init__(self, inner: AsyncMongoClient[dict[str, Any]], plan: FaultPlan) -> None:
        """``inner``: a client of :class:`tests.helpers.mongomock_async.MockServer`."""
        self.inner = cast(MockClient, inner)
        self.plan = plan
        self.admin = FaultDatabase(self.inner.admin, plan)

    def typed(self) -> AsyncMongoClient[dict[str, Any]]:
        """This double, typed as the real client: the store cannot tell them apart."""
        return cast(AsyncMongoClient[dict[str, Any]], self)

    def get_database(self, name: str, **options: Any) -> FaultDatabase:
        return FaultDatabase(self.inner.get_database(name, **options), self.plan)

    async def drop_database(self, name: str) -> None:
        await self.inner.drop_database(name)

    async def close(self) -> None:
        await self.inner.close()


class FaultDatabase:
    def __init__(self, inner: MockDatabase, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan

    def get_collection(self, name: str) -> FaultCollection:
        return FaultCollection(self.inner.get_collection(name), self.plan)

    async def command(self, command: str | Mapping[str, Any]) -> Any:
        return await self.inner.command(command)


class FaultCollection:
    """A collection whose requests go through :meth:`_request` (see the module docstring)."""

    def __init__(self, inner: MockCollection, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # create_index, watch, ...: no faults
        return getattr(self.inner, name)

    async def insert_many(self, documents: Sequence[Any], ordered: bool = True) -> Any:
        async def run(part: Sequence[Any]) -> Any:
            return await self.inner.insert_many(part, ordered=ordered)

        return await self._request("insert_many", run, documents)

    async def bulk_write(self, operations: Sequence[Any], ordered: bool = True) -> Any:
        async def run(part: Sequence[Any]) -> Any:
            return await self.inner.bulk_write(part, ordered=ordered)

        return await self._request("bulk_write", run, operations)

    async def find_one_and_update(self, selector: Any, update: Any, **options: Any) -> Any:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.find_one_and_update(selector, update, **options)

        return await self._request("find_one_and_update", run, ())

    async def update_one(self, selector: Any, update: Any, upsert: bool = False) -> Any:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.update_one(selector, update, upsert=upsert)

        return await self._request("update_one", run, ())

    async def find_one(self, *args: Any) -> Any:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.find_one(*args)

        return await self._request("find_one", run, ())

    async def count_documents(self, selector: Any) -> int:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.count_documents(selector)

        return int(await self._request("count_documents", run, ()))

    async def delete_many(self, selector: Any) -> Any:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.delete_many(selector)

        return await self._request("delete_many", run, ())

    def find(self, *args: Any) -> FaultCursor:
        return FaultCursor(self, self.inner.find(*args))

    async def _request(
        self, method: str, run: Callable[[Sequence[Any]], Awaitable[Any]], parts: Sequence[Any]
    ) -> Any:
        fault = self.plan.due(self.name, method)
        if fault is None:
            return await run(parts)
        if fault == TOO_LARGE:
            raise DocumentTooLarge(
                "BSON document too large (16793600 bytes) - the connected server supports "
                "BSON document sizes up to 16777216 bytes. (injected)"
            )
        if self.plan.before_write:
            raise _step_down() if fault == STEP_DOWN else NetworkTimeout("timed out (injected)")
        if fault == STEP_DOWN:
            if parts:
                with contextlib.suppress(BulkWriteError):  # its duplicate keys: not our fault
                    await run(parts[: len(parts) // 2])
            raise _step_down()
        error: BulkWriteError | None = None
        try:
            await run(parts)
        except BulkWriteError as exc:
            error = exc
        if fault == NETWORK_TIMEOUT:
            raise NetworkTimeout(f"{method} reply lost: timed out (injected)")
        if method in _BULK:
            details = dict(error.details) if error else {"writeErrors": []}
            details["writeConcernErrors"] = [_CONCERN_ERROR]
            raise BulkWriteError(details)
        raise WriteConcernError(str(_CONCERN_ERROR["errmsg"]), 64, dict(_CONCERN_ERROR))


class FaultCursor:
    def __init__(self, collection: FaultCollection, inner: MockCursor) -> None:
        self.collection = collection
        self.inner = inner

    def sort(self, key: Any, direction: int | None = None) -> FaultCursor:
        self.inner.sort(key, direction)
        return self

    def limit(self, count: int) -> FaultCursor:
        self.inner.limit(count)
        return self

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        async def run(_: Sequence[Any]) -> Any:
            return await self.inner.to_list(length)

        found: list[dict[str, Any]] = await self.collection._request("find", run, ())
        return found


def _step_down() -> NotPrimaryError:
    return NotPrimaryError(
        "not primary (injected)",
        {"code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary"},
    )


#: Faults raised before a request takes effect: what the contract mode injects.
BEFORE_WRITE_FAULTS: Final = (STEP_DOWN, NETWORK_TIMEOUT, TOO_LARGE)
_READS: Final = frozenset({"find", "find_one", "count_documents", "delete_many"})


class EveryOtherRequest:
    """The contract mode's chooser: in every other store operation, the first eligible
    request fails, before it takes effect, with the next of :data:`BEFORE_WRITE_FAULTS`.
    Eligible: outside a commit, every read (and purge's and release's deletes); inside one,
    its first request (the events' insert), so the retry that :class:`RetryingMongoStore`
    makes answers exactly what a clean commit answers. (A fault later in a commit leaves
    events that the retry rightly reports DUPLICATE; the fault matrix covers those.)"""

    def __init__(self) -> None:
        self.operations = 0
        self.armed = False
        self.in_commit = False

    def begin(self) -> None:
        """A store operation starts (not its retry)."""
        self.operations += 1
        self.armed = self.operations % 2 == 1

    def __call__(self, collection: str, method: str) -> tuple[Step, str] | None:
        if self.in_commit:
            eligible = (collection, method) == ("events", "insert_many")
        else:
            eligible = method in _READS
        if not eligible or not self.armed:
            return None
        self.armed = False
        fault = BEFORE_WRITE_FAULTS[(self.operations // 2) % len(BEFORE_WRITE_FAULTS)]
        return Step(f"{collection}.{method}", collection, method), fault


class RetryingMongoStore(MongoStore):
    """A MongoStore whose every operation, when it raises StoreUnavailable, is tried once
    more: what the gateway and the provider do for a commit, and a client for a read."""

    def __init__(
        self, client: AsyncMongoClient[dict[str, Any]], chooser: EveryOtherRequest, **options: Any
    ) -> None:
        super().__init__(client, **options)
        self.chooser = chooser
        self.retries = 0
        self.depth = 0

    async def _twice(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        if self.depth:  # inside another operation (get calls batch_get): that one retries
            return await operation()
        self.depth += 1
        try:
            self.chooser.begin()
            try:
                return await operation()
            except StoreUnavailable:
                self.retries += 1
                self.chooser.armed = False
                return await operation()
        finally:
            self.depth -= 1

    async def open(self) -> None:
        await self._twice(super().open)

    async def commit_batch(
        self, reports: Sequence[pb.DeliveryReport], quarantined: Sequence[pb.QuarantinedItem] = ()
    ) -> Committed:
        async def attempt() -> Committed:
            self.chooser.in_commit = True
            try:
                return await MongoStore.commit_batch(self, reports, quarantined)
            finally:
                self.chooser.in_commit = False

        return await self._twice(attempt)

    async def batch_get(
        self, keys: Sequence[pb.MessageKey], *, full: bool = False
    ) -> list[pb.MessageStatus]:
        return await self._twice(lambda: MongoStore.batch_get(self, keys, full=full))

    async def list_messages(
        self, query: MessageFilter, *, after: str | None, limit: int, full: bool = False
    ) -> Page:
        return await self._twice(
            lambda: MongoStore.list_messages(self, query, after=after, limit=limit, full=full)
        )

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        return await self._twice(lambda: MongoStore.changes(self, query, after=after, limit=limit))

    async def last_position(self) -> str | None:
        return await self._twice(lambda: MongoStore.last_position(self))

    async def purge(self, before_micros: int) -> int:
        return await self._twice(lambda: MongoStore.purge(self, before_micros))

    async def quarantined(self, *, after: str | None, limit: int) -> list[pb.QuarantinedItem]:
        return await self._twice(lambda: MongoStore.quarantined(self, after=after, limit=limit))

    async def count_quarantined(self) -> int:
        return await self._twice(lambda: MongoStore.count_quarantined(self))

    async def release(self, ids: Sequence[str]) -> int:
        return await self._twice(lambda: MongoStore.release(self, ids))

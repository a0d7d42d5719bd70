"""How the MongoDB store commits one group-committed batch (see :mod:`statusd.storage.mongo`).

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

plus one "fill if empty" update per message for each status field (recipient, client_ref, ...:
:mod:`statusd.status_fields`).
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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS
from statusd.storage import mongo_docs as docs
from statusd.storage.base import DUPLICATE, STALE, STORED, Outcome, StoreUnavailable
from statusd.storage.mongo_changes import Collection, Feed

_T = TypeVar("_T")
_DUPLICATE_KEY: Final = 11000


def now_micros() -> int:
    return time.time_ns() // 1_000


class BatchWriter:
    """Commits batches to one database's collections (see the module docstring)."""

    def __init__(
        self, events: Collection, messages: Collection, quarantine: Collection, feed: Feed
    ) -> None:
        self.events = events
        self.messages = messages
        self.quarantine = quarantine
        self.feed = feed

    async def commit(
        self, reports: Sequence[pb.DeliveryReport], quarantined: Sequence[pb.QuarantinedItem]
    ) -> list[Outcome]:
        """One outcome per report; raises StoreUnavailable (or a driver error) on failure."""
        now = now_micros()
        stamp = docs.as_datetime(now)
        outcomes: list[Outcome] = [DUPLICATE] * len(reports)
        firsts: dict[str, int] = {}  # an event's _id -> its first place in the batch
        for index, report in enumerate(reports):
            firsts.setdefault(docs.event_id_of(report), index)
        fresh = sorted(firsts.values())
        first_seq = await self.feed.reserve(len(fresh)) if fresh else None
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
        current = await self._apply(to_apply, now, stamp)
        for index in fresh:
            if index not in duplicates:
                outcomes[index] = STORED if index in current else STALE
        if quarantined:
            await self.quarantine.insert_many(
                [_quarantine_document(item, stamp) for item in quarantined], ordered=False
            )
        self.feed.committed(None if first_seq is None else first_seq + len(fresh) - 1)
        return outcomes

    async def _insert_events(self, events: list[docs.Document]) -> list[int]:
        """Inserts the events; returns the positions that were already stored."""
        if not events:
            return []
        try:
            await self.events.insert_many(events, ordered=False)
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
            await self.messages.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            _duplicate_key_errors(exc)  # a conflict means it exists: all this step needs

    async def _stored(self, ids: list[str]) -> dict[str, pb.DeliveryReport]:
        if not ids:
            return {}
        found = await self.events.find({"_id": {"$in": ids}}, {"report": 1}).to_list(None)
        return {e["_id"]: pb.DeliveryReport.FromString(bytes(e["report"])) for e in found}

    async def _apply(
        self, to_apply: list[tuple[int | None, pb.DeliveryReport]], now: int, stamp: datetime
    ) -> set[int]:
        """Applies reports to their messages; returns the batch indexes that became current."""
        operations: list[UpdateOne] = []
        becomes_current: dict[int, int] = {}  # operation index -> batch index
        fills: dict[tuple[str, str], str] = {}
        for index, report in to_apply:
            message = docs.message_id_of_report(report)
            if index is not None:
                becomes_current[len(operations)] = index
            operations += _guarded_updates(message, report, now, stamp)
            for field in FIELDS:
                if getattr(report, field.name):
                    fills.setdefault((message, field.key), getattr(report, field.name))
        operations += [
            UpdateOne({"_id": message, field: ""}, {"$set": {field: value}})
            for (message, field), value in fills.items()
        ]
        if not operations:
            return set()
        try:
            await self.messages.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            missed = _duplicate_key_errors(exc)
        else:
            missed = set()
        return {index for op, index in becomes_current.items() if op not in missed}


def _guarded_updates(
    message: str, report: pb.DeliveryReport, now: int, stamp: datetime
) -> list[UpdateOne]:
    """ "Become current" (an upsert whose duplicate-key error means "not newer"), then
    "count once"."""
    key = model.order_key(report)
    on_insert = docs.skeleton(report, now)
    del on_insert["status"], on_insert["order_key"]
    current = UpdateOne(
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
    digest = docs.applied_digest(report.event_id)
    count: docs.Document = {
        "$push": {"applied": digest},
        "$inc": {"report_count": 1},
        "$max": {"updated": now, "updated_at": stamp},
    }
    bit = model.terminal_bit(report.status)
    if bit:
        count["$bit"] = {"terminal_mask": {"or": bit}}
    return [current, UpdateOne({"_id": message, "applied": {"$ne": digest}}, count)]


def _quarantine_document(item: pb.QuarantinedItem, stamp: datetime) -> docs.Document:
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

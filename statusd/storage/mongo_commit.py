"""How the MongoDB store commits one group-committed batch (see :mod:`statusd.storage.mongo`).

**One batch, a fixed number of round trips**, every one of them idempotent:

1. At once: one unordered ``insert_many`` of the batch's events (``applied: false``; their
   duplicate-key errors are the duplicates), one unordered ``bulk_write`` that creates a
   skeleton for every message the batch touches (``$setOnInsert`` only), and one unordered
   ``insert_many`` of the quarantined items (a unique ``digest`` makes a repeat a no-op).
2. When there are duplicates, one ``find`` reads their stored content and ``applied`` flag.
3. One unordered ``bulk_write`` applies every new report, and every duplicate not yet
   applied, to its message with two guarded updates each:

   * "become current": filter ``{_id, order_key: {$lt: k}}``, ``$set`` the report, as an
     upsert. The message exists (step 1), so the upsert's insert fails with a duplicate-key
     error exactly when the filter did not match: that is how a report is told STALE.
   * "count once": filter ``{_id, "counting.d": {$ne: digest}}``, ``$push`` a counting
     marker ``{d: digest, t: now}``, ``$inc`` ``report_count``, ``$bit or`` the terminal bit,
     ``$max`` the update time.

   plus one "fill if empty" update per message for each status field (recipient, client_ref,
   ...: :mod:`statusd.status_fields`).
4. (Standalone server only) one counter update reserves change numbers for step 5.
5. One unordered ``bulk_write`` marks the applied events ``applied: true`` (and numbers them).
   Watch reads only applied events, so it shows a report once its message reflects it.
   Beside it, when final reports became current (or registrations came after them), one
   projected ``find`` reads those messages' submit and final times for the receipts the
   commit returns (best effort: a failed read loses observations, never the commit).

**What was applied lives in the events collection**, whose ``_id`` index already records each
report once: an event is ``applied`` only after its message counted it. The counting marker
on the message only bridges the moment between steps 3 and 5 (a retry, or another replica
that read the event as not applied just before, must not count it again); markers are
removed by :func:`sweep_markers` once their event is applied and they are older than
:data:`MARKER_HORIZON` (any commit that could still be racing has timed out by then), and a
message keeps at most :data:`statusd.storage.mongo_docs.MAX_MARKERS`. No document grows with
the number of reports a message receives.

**Crash windows.** Nothing is acknowledged before every step succeeded; a failure raises
:class:`StoreUnavailable`, the gateway answers 503, the provider retries. Whatever step
failed, and however much of it went through, the retry converges: inserts are deduplicated
by unique indexes, "become current" is a maximum, "count once" is guarded by its marker,
the mask is an OR, and events still not applied are applied by the retry with their stored
content (so the current report is always one that is in the history). ``report_count``
counts each dedupe key once, whichever replica commits it, because it only moves together
with the marker that prevents a second count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS
from statusd.storage import mongo_docs as docs
from statusd.storage.base import (
    DUPLICATE,
    STALE,
    STORED,
    Committed,
    Outcome,
    Receipt,
    StoreUnavailable,
)
from statusd.storage.mongo_changes import Collection, Feed

log = logging.getLogger(__name__)

_DUPLICATE_KEY: Final = 11000
#: How long a counting marker outlives its commit: far longer than any commit can run
#: (every request of a commit is bounded by ``DLRHUB_MONGODB_TIMEOUT_SECONDS``), with room
#: for clock differences between statusd replicas.
MARKER_HORIZON: Final = timedelta(minutes=15)
_SWEEP_BATCH: Final = 500


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
    ) -> Committed:
        """One outcome per report, and the receipts; raises StoreUnavailable (or a driver
        error) on failure."""
        now = now_micros()
        stamp = docs.as_datetime(now)
        outcomes: list[Outcome] = [DUPLICATE] * len(reports)
        firsts: dict[str, int] = {}  # an event's _id -> its first place in the batch
        passed = await self._passed_timeouts(reports)
        for index, report in enumerate(reports):
            if index not in passed:
                firsts.setdefault(docs.event_id_of(report), index)
        fresh = sorted(firsts.values())
        events = [
            docs.event_document(reports[i], reports[i].SerializeToString(), stamp) for i in fresh
        ]
        touched = {docs.message_id_of_report(reports[index]): reports[index] for index in fresh}
        known: list[int] = (
            await _all(
                self._insert_events(events),
                self._ensure(touched, now),
                self._quarantine(quarantined, stamp),
            )
        )[0]
        duplicates = {fresh[number] for number in known}
        pending = await self._pending([events[number]["_id"] for number in known])
        to_apply: list[tuple[int | None, pb.DeliveryReport]] = []
        for number, index in enumerate(fresh):
            if index not in duplicates:
                to_apply.append((index, reports[index]))
            elif events[number]["_id"] in pending:  # not applied yet: heals a failed commit
                to_apply.append((None, pending[events[number]["_id"]]))
        current = await self._apply(to_apply, now, stamp)
        for index in fresh:
            if index not in duplicates:
                outcomes[index] = STORED if index in current else STALE
        last, receipts = await _all(
            self._mark_applied([report for _, report in to_apply]),
            self._receipts(docs.receipt_candidates(reports, outcomes)),
        )
        self.feed.committed(last)
        return Committed(outcomes, receipts)

    async def _passed_timeouts(self, reports: Sequence[pb.DeliveryReport]) -> set[int]:
        """The batch indexes of timeout entries whose message no longer awaits that deadline
        (a final report came, or it timed out already): they are left out (DUPLICATE). A
        final report that lands between this read and the commit still wins, by order key."""
        timeouts = {
            index: report for index, report in enumerate(reports) if model.is_timeout(report)
        }
        if not timeouts:
            return set()
        wanted = [docs.message_id_of_report(report) for report in timeouts.values()]
        found = await self.messages.find(
            {"_id": {"$in": wanted}, **docs.AWAITING}, {"report_deadline": 1}
        ).to_list(None)
        deadlines = {document["_id"]: document["report_deadline"] for document in found}
        return {
            index
            for index, report in timeouts.items()
            if deadlines.get(docs.message_id_of_report(report)) != model.micros(report.event_time)
        }

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

    async def _quarantine(self, items: Sequence[pb.QuarantinedItem], stamp: datetime) -> None:
        if not items:
            return
        seen: Counter[bytes] = Counter()
        documents = []
        for item in items:
            blob = item.SerializeToString(deterministic=True)
            documents.append(docs.quarantine_document(item, stamp, seen[blob]))
            seen[blob] += 1
        try:
            await self.quarantine.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            _duplicate_key_errors(exc)  # stored by an earlier try of this commit

    async def _pending(self, ids: list[str]) -> dict[str, pb.DeliveryReport]:
        """The stored content of the duplicates no message has counted yet."""
        if not ids:
            return {}
        found = await self.events.find(
            {"_id": {"$in": ids}, "applied": False}, {"report": 1}
        ).to_list(None)
        return {e["_id"]: pb.DeliveryReport.FromString(bytes(e["report"])) for e in found}

    async def _apply(
        self, to_apply: list[tuple[int | None, pb.DeliveryReport]], now: int, stamp: datetime
    ) -> set[int]:
        """Applies reports to their messages; returns the batch indexes that became current."""
        operations: list[UpdateOne] = []
        becomes_current: dict[int, int] = {}  # operation index -> batch index
        for index, report in to_apply:
            message = docs.message_id_of_report(report)
            if index is not None:
                becomes_current[len(operations)] = index
            operations += _guarded_updates(message, report, now, stamp)
            if model.is_registration(report):
                operations.append(registration_update(message, report, now))
        operations += fill_updates([report for _, report in to_apply])
        if not operations:
            return set()
        try:
            await self.messages.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            missed = _duplicate_key_errors(exc)
        else:
            missed = set()
        return {index for op, index in becomes_current.items() if op not in missed}

    async def _receipts(self, candidates: dict[str, int | None]) -> list[Receipt]:
        """The receipts of the candidate messages that are registered: one projected read of
        the messages as the batch left them, beside the last step; best effort (a failed
        read loses the observations, never the commit)."""
        if not candidates:
            return []
        try:
            found = await self.messages.find(
                {"_id": {"$in": list(candidates)}, "submit_time": {"$gte": 0}},
                docs.RECEIPT_FIELDS,
            ).to_list(None)
        except Exception as exc:  # best effort: a metric is not worth a failed commit
            log.debug("receipts not read: %s", exc)
            return []
        return [r for document in found if (r := docs.receipt(document, candidates))]

    async def _mark_applied(self, applied: list[pb.DeliveryReport]) -> int | None:
        """The last step: the events become visible to Watch (numbered on a standalone
        server). Returns the last change number used, if the feed numbers changes."""
        if not applied:
            return None
        first = await self.feed.reserve(len(applied))
        operations = []
        for number, report in enumerate(applied):
            update: docs.Document = {"applied": True}
            if first is not None:
                update["seq"] = first + number
            operations.append(
                UpdateOne({"_id": docs.event_id_of(report), "applied": False}, {"$set": update})
            )
        try:
            await self.events.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            _duplicate_key_errors(exc)
            raise  # an update by _id has no duplicate key: unreachable
        return None if first is None else first + len(applied) - 1


def fill_updates(reports: Sequence[pb.DeliveryReport]) -> list[UpdateOne]:
    """ "Fill if empty": per message and status field, the first value the reports carry
    (the recipient together with its country)."""
    fills: dict[tuple[str, str], str] = {}
    for report in reports:
        message = docs.message_id_of_report(report)
        for field in FIELDS:
            if getattr(report, field.name):
                fills.setdefault((message, field.key), getattr(report, field.name))
    updates = []
    for (message, key), value in fills.items():
        values = {key: value}
        if key == "recipient":
            values["country"] = model.country_of(value)
        updates.append(UpdateOne({"_id": message, key: ""}, {"$set": values}))
    return updates


def registration_update(message: str, entry: pb.DeliveryReport, now: int) -> UpdateOne:
    """Sets the registration keys once: the first registration applied wins."""
    submit, deadline = model.registration_micros(entry.registration)
    return UpdateOne(
        {"_id": message, "registered_at": {"$exists": False}},
        {"$set": {"submit_time": submit, "registered_at": now, "report_deadline": deadline}},
    )


def _guarded_updates(
    message: str, report: pb.DeliveryReport, now: int, stamp: datetime
) -> list[UpdateOne]:
    """ "Become current" (an upsert whose duplicate-key error means "not newer"), then
    "count once"."""
    key = model.order_key(report)
    on_insert = docs.skeleton(report, now)
    del on_insert["status"], on_insert["order_key"], on_insert["error_code"]  # set below
    current = UpdateOne(
        {"_id": message, "order_key": {"$lt": key}},
        {
            "$set": {
                "status": report.status,
                "order_key": key,
                "report": report.SerializeToString(),
                "error_code": report.error.code,
                # A final report sets its time; an entry that is not one (non-final, a
                # timeout) only ever replaces entries without a final time: none to clear.
                **(
                    {"final_time": final} if (final := model.final_time(report)) is not None else {}
                ),
            },
            "$setOnInsert": on_insert,
        },
        upsert=True,
    )
    digest = docs.applied_digest(report.event_id)
    marker = {"d": digest, "t": stamp}
    count: docs.Document = {
        "$push": {"counting": {"$each": [marker], "$slice": -docs.MAX_MARKERS}},
        "$inc": {"report_count": 1 if model.is_report(report) else 0},
        "$max": {"updated": now, "updated_at": stamp},
    }
    bit = model.terminal_bit(report.status)
    if bit:
        count["$bit"] = {"terminal_mask": {"or": bit}}
    return [current, UpdateOne({"_id": message, "counting.d": {"$ne": digest}}, count)]


async def sweep_markers(messages: Collection, events: Collection, now: datetime) -> int:
    """Removes the counting markers older than :data:`MARKER_HORIZON` whose events are
    applied (a marker of an event not applied yet stays: the retry of its commit needs it).
    Returns how many messages it cleaned."""
    cutoff = now - MARKER_HORIZON
    cleaned, after = 0, ""
    while True:
        found = (
            await messages.find({"counting.t": {"$lt": cutoff}, "_id": {"$gt": after}}, {"_id": 1})
            .sort("_id")
            .limit(_SWEEP_BATCH)
            .to_list(None)
        )
        if not found:
            return cleaned
        keys = [document["_id"] for document in found]
        applied = await events.find(
            {"key": {"$in": keys}, "applied": {"$ne": False}}, {"key": 1, "event_id": 1}
        ).to_list(None)
        digests: dict[str, list[str]] = {}
        for event in applied:
            digests.setdefault(event["key"], []).append(docs.applied_digest(event["event_id"]))
        operations = [
            UpdateOne(
                {"_id": key}, {"$pull": {"counting": {"d": {"$in": ds}, "t": {"$lt": cutoff}}}}
            )
            for key, ds in digests.items()
        ]
        if operations:
            await messages.bulk_write(operations, ordered=False)
        cleaned += len(operations)
        after = keys[-1]


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


async def _all(*requests: Awaitable[Any]) -> list[Any]:
    """Runs independent requests at once; waits for all before raising any one's error.
    Returns their results in order."""
    results = await asyncio.gather(*requests, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results

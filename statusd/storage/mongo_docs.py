"""The MongoDB store's documents, indexes and cursors (see :mod:`statusd.storage.mongo`).

The status fields (:mod:`statusd.status_fields`) are document keys, each with its index.

Registrations, report timeouts and statistics add (times in microseconds since the epoch,
like ``first_seen``; a key is absent while unknown): ``submit_time``, ``registered_at``
and ``report_deadline`` (set once, by the first registration), ``country`` (ISO alpha-2,
filled with the recipient), ``final_time`` and ``error_code`` (set with the current
entry). :data:`AWAITING` is the condition of the sweeper's partial index.

Every value that comes from a provider is stored as a BSON *value*, never as a field name:
reports and quarantined items are serialized protobuf bytes (BSON Binary) next to a few
indexed scalar fields, so ``$``-prefixed or dotted keys inside a payload are inert data. No
query or update here uses an aggregation pipeline, where a string like ``"$x"`` would be read
as a field path; in plain filters and update operators every string is a literal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pymongo import ASCENDING

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.status_fields import FIELDS, StatusField
from statusd.storage.base import (
    STALE,
    STORED,
    InvalidPosition,
    MessageFilter,
    Outcome,
    Receipt,
    set_times,
)

Document = dict[str, Any]
#: ``(collection, name, keys, options)``
Index = tuple[str, str, list[tuple[str, int]], dict[str, Any]]

#: Fields a read needs; ``counting`` (the markers that guard ``report_count``) stays behind.
MESSAGE_FIELDS: Final = {"counting": 0}
#: The list order: first-seen time, then the message key. Both are set once, when the message
#: document is created, and never change, so the order is stable while reports keep arriving.
LIST_ORDER: Final = [("first_seen", ASCENDING), ("_id", ASCENDING)]
_MAX_MICROS: Final = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def _partial(field: str) -> dict[str, Any]:
    return {"partialFilterExpression": {field: {"$gt": ""}}}


def field_index(field: StatusField) -> Index:
    """The index of a status field (:mod:`statusd.status_fields`): only messages that carry
    it, in list order."""
    keys = [(name, ASCENDING) for name in (*field.index_prefix, field.key)]
    return ("messages", f"list_{field.index}", [*keys, *LIST_ORDER], _partial(field.key))


#: Messages awaiting a report (:func:`statusd.model.awaiting_report`): registered, with a
#: non-terminal current entry (a skeleton's empty ``order_key`` is excluded by the reads).
AWAITING: Final[dict[str, Any]] = {"report_deadline": {"$gte": 0}, "order_key": {"$lt": "1"}}

#: ``(collection, name, keys, options)`` of every index, created idempotently at start-up.
#: The TTL indexes get ``expireAfterSeconds`` from the retention setting.
INDEXES: Final[list[Index]] = [
    ("messages", "list_all", LIST_ORDER, {}),
    ("messages", "list_provider", [("provider", ASCENDING), *LIST_ORDER], {}),
    (
        "messages",
        "list_account",
        [("provider", ASCENDING), ("account", ASCENDING), *LIST_ORDER],
        {},
    ),
    ("messages", "list_status", [("status", ASCENDING), *LIST_ORDER], {}),
    *(field_index(field) for field in FIELDS),
    ("messages", "list_updated", [("updated", ASCENDING), *LIST_ORDER], {}),
    ("messages", "retention", [("updated_at", ASCENDING)], {"ttl": True}),
    ("events", "history", [("key", ASCENDING)], {}),
    ("events", "retention", [("stored_at", ASCENDING)], {"ttl": True}),
    ("events", "sequence", [("seq", ASCENDING)], {"partialFilterExpression": {"seq": {"$gt": 0}}}),
    ("quarantine", "retention", [("stored_at", ASCENDING)], {"ttl": True}),
    ("messages", "counting", [("counting.t", ASCENDING)], {}),
    (
        "messages",
        "report_deadline",
        [("report_deadline", ASCENDING)],
        {"partialFilterExpression": AWAITING},
    ),
    ("messages", "list_awaiting", LIST_ORDER, {"partialFilterExpression": AWAITING}),
    (
        "messages",
        "stats_submit",
        [("submit_time", ASCENDING)],
        {"partialFilterExpression": {"submit_time": {"$gte": 0}}},
    ),
    ("quarantine", "dedupe", [("digest", ASCENDING)], {"unique": True, "sparse": True}),
]
#: Counting markers a message keeps at most (see :mod:`statusd.storage.mongo_commit`):
#: about 65 bytes each, so a message document never comes near the 16 MiB limit.
MAX_MARKERS: Final = 128


def message_id_of(provider: str, account: str, message_id: str) -> str:
    """The ``_id`` of a message document: its key as a compact JSON array (unambiguous for
    any characters, and the shard key: ``{_id: "hashed"}``)."""
    return json.dumps([provider, account, message_id], ensure_ascii=False, separators=(",", ":"))


def message_id_of_report(report: pb.DeliveryReport) -> str:
    return message_id_of(report.provider, report.account, report.message_id)


def message_id_of_key(key: pb.MessageKey) -> str:
    return message_id_of(key.provider, key.account, key.message_id)


def event_id_of(report: pb.DeliveryReport) -> str:
    """The ``_id`` of an event document: message key plus dedupe key. Every event of a message
    carries the message key in ``key``, so sharding events on ``{key: "hashed"}`` keeps both
    copies of any ``_id`` on one shard and the ``_id`` index enforces dedupe cluster-wide."""
    return json.dumps(
        [report.provider, report.account, report.message_id, report.event_id],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def applied_digest(event_id: str) -> str:
    """A counting marker's name for a report (128 bits of SHA-256 of its dedupe key)."""
    return hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def as_datetime(micros: int) -> datetime:
    """Microseconds since the epoch as a UTC datetime (BSON dates keep milliseconds)."""
    clamped = min(max(micros, 0), _MAX_MICROS)
    return datetime.fromtimestamp(clamped // 1_000_000, UTC).replace(
        microsecond=clamped % 1_000_000
    )


def micros_of(value: datetime) -> int:
    """A BSON date read back (naive means UTC, as PyMongo returns them) as microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_document(report: pb.DeliveryReport, blob: bytes, now: datetime) -> Document:
    """One distinct report of the history, not yet applied to its message: ``applied``
    turns true (and, on a standalone server, ``seq`` is set) in a commit's last step."""
    return {
        "_id": event_id_of(report),
        "key": message_id_of_report(report),
        "event_id": report.event_id,
        "report": blob,
        "stored_at": now,
        "applied": False,
    }


def quarantine_document(item: pb.QuarantinedItem, stamp: datetime, occurrence: int) -> Document:
    """A quarantined item. Its ``digest`` (unique) names its content (which includes the
    gateway's request id and receive time) and which ``occurrence`` of that content in its
    commit it is, so a retried commit inserts nothing twice and a commit holding two equal
    items keeps both."""
    blob = item.SerializeToString(deterministic=True)
    digest = hashlib.sha256(blob)
    digest.update(occurrence.to_bytes(8, "big"))
    return {
        "provider": item.provider,
        "account": item.account,
        "reason": item.reason,
        "item": blob,
        "digest": digest.hexdigest(),
        "stored_at": stamp,
    }


def skeleton(report: pb.DeliveryReport, now_micros: int) -> Document:
    """A message document before any report is applied to it. Reads skip it (empty
    ``order_key``) until its first report becomes current."""
    return {
        "provider": report.provider,
        "account": report.account,
        "message_id": report.message_id,
        "status": 0,
        "order_key": "",
        "first_seen": now_micros,
        "updated": now_micros,
        "updated_at": as_datetime(now_micros),
        "report_count": 0,
        "terminal_mask": 0,
        "country": "",
        "error_code": "",
        "counting": [],
        **{field.key: "" for field in FIELDS},
    }


def message_status(
    document: Mapping[str, Any], history: Sequence[pb.DeliveryReport] | None = None
) -> pb.MessageStatus:
    """A message document (and, for the full view, its history) as the proto."""
    status = pb.MessageStatus(
        provider=document["provider"],
        account=document["account"],
        message_id=document["message_id"],
        status=document["status"],
        latest_report=pb.DeliveryReport.FromString(bytes(document["report"])),
        report_count=document["report_count"],
        conflict=model.has_conflict(document["terminal_mask"]),
        country=document.get("country", ""),
        **{field.name: document[field.key] for field in FIELDS},
    )
    status.first_seen_time.FromMicroseconds(document["first_seen"])
    status.update_time.FromMicroseconds(document["updated"])
    set_times(
        status,
        submit_time=document.get("submit_time"),
        register_time=document.get("registered_at"),
        report_deadline_time=document.get("report_deadline"),
        final_time=document.get("final_time"),
    )
    if history:
        status.history.extend(sorted(history, key=model.history_key))
    return status


def filter_query(query: MessageFilter) -> Document:
    """The MongoDB filter of a List or Watch query (only messages with a current report)."""
    found: Document = {"order_key": {"$gt": ""}}
    if query.provider:
        found["provider"] = query.provider
    if query.account is not None:
        found["account"] = query.account
    if query.statuses:
        found["status"] = {"$in": sorted(query.statuses)}
    for field in FIELDS:
        if query.value(field.name):
            found[field.key] = query.value(field.name)
    updated: Document = {}
    if query.update_time_start is not None:
        updated["$gte"] = query.update_time_start
    if query.update_time_end is not None:
        updated["$lt"] = query.update_time_end
    if updated:
        found["updated"] = updated
    if query.awaiting_report:
        found["report_deadline"] = AWAITING["report_deadline"]
        found["order_key"] = {"$gt": "", **AWAITING["order_key"]}
    return found


def encode_cursor(document: Mapping[str, Any]) -> str:
    """The list cursor after ``document``: its first-seen time and key, opaque to clients."""
    raw = json.dumps([document["first_seen"], document["_id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_query(cursor: str) -> Document:
    """The filter for "after this cursor" in list order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        first_seen, message = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidPosition(f"not a list cursor of the mongodb store: {cursor[:40]!r}") from exc
    if not isinstance(first_seen, int) or not isinstance(message, str):
        raise InvalidPosition(f"not a list cursor of the mongodb store: {cursor[:40]!r}")
    # The plain lower bound lets the index scan start at the cursor; the $or settles ties.
    return {
        "first_seen": {"$gte": first_seen},
        "$or": [{"first_seen": {"$gt": first_seen}}, {"_id": {"$gt": message}}],
    }


#: What the receipts read of a message (:func:`receipt`).
RECEIPT_FIELDS: Final = {"provider": 1, "country": 1, "submit_time": 1, "final_time": 1}


def receipt_candidates(
    reports: Sequence[pb.DeliveryReport], outcomes: Sequence[Outcome]
) -> dict[str, int | None]:
    """The messages of the batch that may have a receipt: those whose final report became
    current (its final time) and those registered after it (None: the stored final time)."""
    candidates: dict[str, int | None] = {}
    for report, outcome in zip(reports, outcomes, strict=True):
        if outcome == STORED and (final := model.final_time(report)) is not None:
            candidates[message_id_of_report(report)] = final
        elif outcome == STALE and model.is_registration(report):
            candidates[message_id_of_report(report)] = None
    return candidates


def receipt(document: Document, candidates: Mapping[str, int | None]) -> Receipt | None:
    """The receipt of a candidate message document (:data:`RECEIPT_FIELDS`) that is
    registered: its final time is the candidate's, or the stored one (None: no receipt)."""
    final = candidates[document["_id"]]
    if final is None:
        final = document.get("final_time")
    if final is None or document.get("submit_time") is None:
        return None
    return Receipt(
        document["provider"], document.get("country", ""), document["submit_time"], final
    )

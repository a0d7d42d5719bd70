"""GetDeliveryStats in MongoDB: one aggregation pipeline over ``messages``.

``$match`` selects the window on the basis time (through the ``stats_submit`` index, or the
``list_all`` index that starts with ``first_seen``) and the provider/account filters;
``$project`` reduces each message to its group values, its flags and its latency; ``$group``
counts per group and latency bucket, the bucket computed with :func:`bucket_expression`, the
pipeline form of :func:`statusd.stats.bucket_of`. The rules are in :mod:`statusd.stats`.

Every string that reaches the pipeline from a request (provider, account) is a value under
a query operator of ``$match``, never an expression, so it cannot name a field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd.stats import LATENCY_CAP, SEGMENTS, StatsQuery, StatsRow, bucket_offset

Document = dict[str, Any]
_DELIVERED: Final = pb.DELIVERY_STATUS_DELIVERED
_NO_REPORT: Final = pb.DELIVERY_STATUS_NO_REPORT


def _missing(key: str) -> Document:
    """True when a document has no value (absent or null) under ``key``."""
    return {"$eq": [{"$ifNull": [f"${key}", None]}, None]}


def bucket_expression(value: str, segments: Sequence[tuple[int, int, int]] = SEGMENTS) -> Any:
    """The bucket of ``value`` (a field path of a clamped latency in microseconds): a binary
    search over the segments with ``$cond``, then an exact division by a power of two (a
    latency below 2^48 is exact in a double)."""
    if len(segments) == 1:
        _, _, shift = segments[0]
        if not shift:
            return value
        return {"$add": [{"$floor": {"$divide": [value, 1 << shift]}}, bucket_offset(shift)]}
    middle = len(segments) // 2
    return {
        "$cond": [
            {"$lt": [value, segments[middle][0]]},
            bucket_expression(value, segments[:middle]),
            bucket_expression(value, segments[middle:]),
        ]
    }


def pipeline(query: StatsQuery) -> list[Document]:
    """The aggregation pipeline of ``query``; its results are turned into rows by
    :func:`rows_of`."""
    selection: Document = {
        query.basis: {"$gte": query.start, "$lt": query.end},
        "order_key": {"$gt": ""},  # a message document before its first entry
    }
    if query.provider:
        selection["provider"] = query.provider
    if query.account is not None:
        selection["account"] = query.account
    latency = {
        "$cond": [
            {"$or": [_missing("final_time"), _missing("submit_time")]},
            None,
            {"$min": [{"$max": [{"$subtract": ["$final_time", "$submit_time"]}, 0]}, LATENCY_CAP]},
        ]
    }
    has_final_time = {"$ne": [{"$ifNull": ["$final_time", None]}, None]}
    final = {"$or": [has_final_time, {"$eq": ["$status", _NO_REPORT]}]}
    shaped: Document = {
        "_id": 0,
        **{f"k_{column}": f"${column}" for column in query.group_by},
        "latency": latency,
        "delivered": {"$cond": [{"$eq": ["$status", _DELIVERED]}, 1, 0]},
        "no_report": {"$cond": [{"$eq": ["$status", _NO_REPORT]}, 1, 0]},
        "final": {"$cond": [final, 1, 0]},
    }
    key: Document = {column: f"$k_{column}" for column in query.group_by}
    key["bucket"] = {"$cond": [_missing("latency"), None, bucket_expression("$latency")]}
    counts = {name: {"$sum": f"${name}"} for name in ("delivered", "no_report", "final")}
    return [
        {"$match": selection},
        {"$project": shaped},
        {"$group": {"_id": key, "messages": {"$sum": 1}, **counts}},
    ]


def rows_of(query: StatsQuery, results: Sequence[Document]) -> list[StatsRow]:
    """The pipeline's results as store rows (:data:`statusd.stats.StatsRow`)."""
    rows: list[StatsRow] = []
    for result in results:
        key = result["_id"]
        bucket = key.get("bucket")
        rows.append(
            (
                *(key.get(column) for column in query.group_by),
                None if bucket is None else int(bucket),
                *(int(result[name]) for name in ("messages", "delivered", "no_report", "final")),
            )
        )
    return rows

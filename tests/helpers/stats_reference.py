"""Delivery statistics by brute force: every message read back, counted in Python, exact
percentiles from the sorted latencies. The stores' aggregates must agree with it (counts and
rates exactly; percentiles to the bucket, see :func:`assert_agrees`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import model, stats
from statusd.storage.base import MessageFilter, Store


@dataclass(frozen=True)
class Row:
    """What the statistics read of one message."""

    provider: str
    account: str
    country: str
    status: int
    error_code: str
    submit_time: int | None
    first_seen: int
    final_time: int | None

    @classmethod
    def of(cls, status: pb.MessageStatus) -> Row:
        def optional(name: str) -> int | None:
            return model.micros(getattr(status, name)) if status.HasField(name) else None  # type: ignore[arg-type]

        return cls(
            provider=status.provider,
            account=status.account,
            country=status.country,
            status=status.status,
            error_code=status.latest_report.error.code,
            submit_time=optional("submit_time"),
            first_seen=model.micros(status.first_seen_time),
            final_time=optional("final_time"),
        )


async def rows_of(store: Store) -> list[Row]:
    """Every message of the store, through List."""
    rows: list[Row] = []
    after: str | None = None
    while True:
        page = await store.list_messages(MessageFilter(), after=after, limit=500)
        rows.extend(Row.of(status) for status in page.items)
        if page.cursor is None:
            return rows
        after = page.cursor


@dataclass
class Exact:
    """One group counted by brute force."""

    messages: int = 0
    delivered: int = 0
    no_report: int = 0
    final: int = 0
    latencies: list[int] | None = None


def exact_percentile(latencies: list[int], percent: int) -> int:
    """The nearest-rank percentile: the value at rank ceil(n * percent / 100)."""
    ordered = sorted(latencies)
    return ordered[max(-(-len(ordered) * percent // 100), 1) - 1] if ordered else 0


def reference(query: stats.StatsQuery, rows: Iterable[Row]) -> dict[tuple[Any, ...], Exact]:
    """The groups of ``query`` over ``rows`` (the key ``()`` holds the total)."""
    groups: dict[tuple[Any, ...], Exact] = defaultdict(lambda: Exact(latencies=[]))
    for row in rows:
        when = row.submit_time if query.basis == "submit_time" else row.first_seen
        if when is None or not query.start <= when < query.end:
            continue
        if query.provider and row.provider != query.provider:
            continue
        if query.account is not None and row.account != query.account:
            continue
        key = tuple(getattr(row, column) for column in query.group_by)
        for target in {key, ()}:
            group = groups[target]
            group.messages += 1
            group.delivered += row.status == pb.DELIVERY_STATUS_DELIVERED
            group.no_report += row.status == pb.DELIVERY_STATUS_NO_REPORT
            group.final += stats.is_final(row.status, row.final_time)
            if row.final_time is not None and row.submit_time is not None:
                assert group.latencies is not None
                group.latencies.append(stats.clamp_latency(row.final_time - row.submit_time))
    return dict(groups)


def _assert_group(found: status_pb.DeliveryStatsGroup, exact: Exact) -> None:
    assert exact.latencies is not None
    assert (
        found.message_count,
        found.delivered_count,
        found.no_report_count,
        found.final_count,
        found.latency_count,
    ) == (exact.messages, exact.delivered, exact.no_report, exact.final, len(exact.latencies))
    assert found.delivery_rate == stats.rate(exact.delivered, exact.final)
    assert found.no_report_rate == stats.rate(exact.no_report, exact.final)
    for q, duration in zip(
        stats.PERCENTILES,
        (found.receipt_latency_p50, found.receipt_latency_p90, found.receipt_latency_p99),
        strict=True,
    ):
        true = exact_percentile(exact.latencies, q)
        approx = duration.ToMicroseconds()
        # The bucket that holds the true percentile, and within the documented error.
        assert approx == (stats.bucket_value(stats.bucket_of(true)) if exact.latencies else 0)
        assert abs(approx - true) <= true / (2 * stats.SUB_BUCKETS), (q, true, approx)


def assert_agrees(
    query: stats.StatsQuery, response: status_pb.GetDeliveryStatsResponse, rows: Iterable[Row]
) -> None:
    """``response`` is what brute force computes for ``query`` over ``rows``."""
    expected = reference(query, rows)
    _assert_group(response.total, expected.pop((), Exact(latencies=[])))
    found = {
        tuple(getattr(group, column) for column in query.group_by): group
        for group in response.groups
    }
    assert len(found) == len(response.groups), "a group appears twice"
    if not query.group_by:
        assert not response.groups
        return
    assert set(found) == set(expected)
    for key, group in found.items():
        _assert_group(group, expected[key])

"""The statistics rules: buckets, percentiles, validation, and the response from store rows
(compared with the brute-force reference)."""

from __future__ import annotations

import random
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import errors, stats
from statusd.storage.mongo_stats import bucket_expression
from statusd.storage.sqlite_stats import bucket_sql
from tests.helpers.stats_reference import Row, assert_agrees, exact_percentile

latencies = st.integers(min_value=-(10**6), max_value=stats.LATENCY_CAP + 10**6)


@given(latencies)
def test_a_latency_lies_in_its_bucket_and_its_value_is_within_the_error(latency: int) -> None:
    x = stats.clamp_latency(latency)
    lower, upper = stats.bucket_bounds(stats.bucket_of(latency))
    assert lower <= x <= upper
    value = stats.bucket_value(stats.bucket_of(latency))
    assert abs(value - x) <= x / (2 * stats.SUB_BUCKETS)


def test_buckets_are_contiguous_and_increasing() -> None:
    previous_upper = -1
    for bucket in range(stats.MAX_BUCKET + 1):
        lower, upper = stats.bucket_bounds(bucket)
        assert lower == previous_upper + 1
        assert upper >= lower
        assert stats.bucket_of(lower) == stats.bucket_of(upper) == bucket
        previous_upper = upper
    assert previous_upper == stats.LATENCY_CAP


def _eval_mongo(expression: object, value: int) -> float:
    """A small evaluator of the operators :func:`bucket_expression` uses."""
    if expression == "$latency":
        return value
    if isinstance(expression, int):
        return expression
    assert isinstance(expression, dict)
    assert len(expression) == 1
    ((operator, operands),) = expression.items()
    if operator == "$cond":
        test, then, otherwise = operands
        return _eval_mongo(then if _eval_mongo(test, value) else otherwise, value)
    if operator == "$floor":
        return float(int(_eval_mongo(operands, value)))
    left, right = (_eval_mongo(operand, value) for operand in operands)
    return {"$lt": left < right, "$add": left + right, "$divide": left / right}[operator]


@given(st.integers(min_value=0, max_value=stats.LATENCY_CAP))
def test_the_store_expressions_compute_bucket_of(latency: int) -> None:
    connection = sqlite3.connect(":memory:")
    sql = f"SELECT {bucket_sql('?')}"
    found = connection.execute(sql, [latency] * sql.count("?")).fetchone()[0]
    assert found == stats.bucket_of(latency)
    assert int(_eval_mongo(bucket_expression("$latency"), latency)) == stats.bucket_of(latency)


@given(st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=300))
def test_percentiles_from_buckets_are_the_bucket_of_the_exact_percentile(
    values: list[int],
) -> None:
    buckets: dict[int, int] = {}
    for value in values:
        buckets[stats.bucket_of(value)] = buckets.get(stats.bucket_of(value), 0) + 1
    for q in stats.PERCENTILES:
        true = exact_percentile(values, q)
        assert stats.percentile(buckets, q) == stats.bucket_value(stats.bucket_of(true))


def test_no_latency_is_a_zero_percentile() -> None:
    assert stats.percentile({}, 99) == 0


def request(**values: object) -> status_pb.GetDeliveryStatsRequest:
    made = status_pb.GetDeliveryStatsRequest(**values)  # type: ignore[arg-type]
    made.start_time.FromSeconds(1000)
    made.end_time.FromSeconds(2000)
    return made


def test_stats_query_of_a_request() -> None:
    query = stats.stats_query(
        request(
            group_by=[status_pb.STATS_DIMENSION_STATUS, status_pb.STATS_DIMENSION_ACCOUNT],
            time_basis=status_pb.STATS_TIME_BASIS_FIRST_SEEN_TIME,
            provider="plivo",
        )
    )
    assert query == stats.StatsQuery(
        start=1000 * 10**6,
        end=2000 * 10**6,
        basis="first_seen",
        group_by=("provider", "account", "status"),  # an account is one of a provider
        provider="plivo",
        account=None,
    )
    assert stats.stats_query(request(account="eu")).account == "eu"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"group_by": [0]}, "group_by"),
        ({"group_by": [1, 1]}, "group_by"),
        ({"group_by": [9]}, "group_by"),
        ({"time_basis": 7}, "time_basis"),
    ],
)
def test_a_bad_request_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=field):
        stats.stats_query(request(**change))


def test_the_window_is_required_and_not_empty() -> None:
    with pytest.raises(errors.InvalidArgument, match="required"):
        stats.stats_query(status_pb.GetDeliveryStatsRequest())
    backwards = request()
    backwards.end_time.FromSeconds(1000)
    with pytest.raises(errors.InvalidArgument, match="after start_time"):
        stats.stats_query(backwards)


def random_rows(count: int, seed: int) -> list[Row]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(count):
        status = rnd.choice([1, 3, 4, 4, 4, 5, 8, 9, 10])
        submit = rnd.choice([None, rnd.randrange(10**9)])
        final = None if status in (1, 3, 10) else rnd.randrange(10**9 + 10**8)
        rows.append(
            Row(
                provider=rnd.choice(["infobip", "plivo"]),
                account=rnd.choice(["", "eu"]),
                country=rnd.choice(["", "GB", "DE"]),
                status=status,
                error_code="" if status == 4 else rnd.choice(["", "30", "61"]),
                submit_time=submit,
                first_seen=rnd.randrange(10**9),
                final_time=final,
            )
        )
    return rows


def brute_rows(query: stats.StatsQuery, rows: list[Row]) -> list[tuple[object, ...]]:
    """Store rows as a store would hand them over: one per message."""
    found = []
    for row in rows:
        when = row.submit_time if query.basis == "submit_time" else row.first_seen
        if when is None or not query.start <= when < query.end:
            continue
        latency = None
        if row.final_time is not None and row.submit_time is not None:
            latency = stats.bucket_of(row.final_time - row.submit_time)
        found.append(
            (
                *(getattr(row, column) for column in query.group_by),
                latency,
                1,
                int(row.status == pb.DELIVERY_STATUS_DELIVERED),
                int(row.status == pb.DELIVERY_STATUS_NO_REPORT),
                int(stats.is_final(row.status, row.final_time)),
            )
        )
    return found


@pytest.mark.parametrize("group_by", [(), ("provider",), ("provider", "account", "country")])
@pytest.mark.parametrize("basis", ["submit_time", "first_seen"])
def test_the_response_from_rows_agrees_with_brute_force(
    group_by: tuple[str, ...], basis: str
) -> None:
    rows = random_rows(400, seed=len(group_by))
    query = stats.StatsQuery(start=10**8, end=9 * 10**8, basis=basis, group_by=group_by)
    response = stats.stats_response(query, stats.summarize(brute_rows(query, rows), len(group_by)))
    assert_agrees(query, response, rows)
    keys = [tuple(getattr(group, column) for column in group_by) for group in response.groups]
    assert keys == sorted(keys)


def test_rates_divide_by_the_final_count() -> None:
    query = stats.StatsQuery(start=0, end=10)
    rows = [(None, 1, 1, 0, 1), (None, 1, 0, 1, 1), (None, 2, 0, 0, 0)]
    total = stats.stats_response(query, stats.summarize(rows, 0)).total
    assert (total.message_count, total.final_count) == (4, 2)
    assert (total.delivery_rate, total.no_report_rate) == (0.5, 0.5)
    assert stats.stats_response(query, stats.StatsResult([], {})).total.delivery_rate == 0.0

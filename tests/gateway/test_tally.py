"""gateway/tally.py: the lock-free counters and histograms expose exactly what
prometheus_client's Counter and Histogram expose for the same counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from gateway.tally import LoopCounter, LoopHistogram, LoopMetric

disable_created_metrics()  # type: ignore[no-untyped-call]  # as gateway.metrics does

BUCKETS = (0.001, 0.0025, 0.01, 0.1, 1, 10)
#: Exact bucket bounds, values between and beyond them, zero and a negative one.
EDGES = [*BUCKETS, 0.0, -1.0, 0.0005, 0.002, 0.5, 5.0, 11.0, 1e9]


def both_registries() -> tuple[CollectorRegistry, CollectorRegistry]:
    return CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)


@given(st.lists(st.sampled_from(EDGES) | st.floats(0, 20, allow_nan=False), max_size=60))
def test_a_histogram_exposes_what_prometheus_client_would(values: list[float]) -> None:
    ours, theirs = both_registries()
    mine = LoopHistogram("t_seconds", "Doc.", ["provider"], BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "Doc.", ["provider"], buckets=BUCKETS, registry=theirs)
    for index, value in enumerate(values):
        provider = "a" if index % 3 else "b"
        mine.labels(provider).observe(value)
        reference.labels(provider).observe(value)
    assert generate_latest(ours) == generate_latest(theirs)


def test_a_counter_exposes_what_prometheus_client_would() -> None:
    ours, theirs = both_registries()
    mine = LoopCounter("t_requests_total", "Doc.", ["provider", "outcome"], registry=ours)
    reference = Counter("t_requests_total", "Doc.", ["provider", "outcome"], registry=theirs)
    for counter in (mine, reference):
        counter.labels("a", "ok").inc()
        counter.labels("a", "ok").inc(2.5)
        counter.labels("b", "bad_request").inc()
    assert generate_latest(ours) == generate_latest(theirs)
    assert ours.get_sample_value("t_requests_total", {"provider": "a", "outcome": "ok"}) == 3.5


def test_a_label_set_is_one_child_and_a_wrong_one_is_refused() -> None:
    counter = LoopCounter("t_total", "Doc.", ["provider"], registry=None)
    assert counter.labels("a") is counter.labels("a")
    histogram = LoopHistogram("t_seconds", "Doc.", ["provider"], BUCKETS, registry=None)
    assert histogram.labels("a") is histogram.labels("a")
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels()
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("a").inc(-1)


def test_infinity_is_the_last_bucket_once() -> None:
    histogram = LoopHistogram("t_seconds", "Doc.", [], (1, math.inf), registry=None)
    assert histogram.bounds == (1.0, math.inf)
    histogram.labels().observe(math.inf)
    assert histogram.labels().counts == [0, 1]


def test_a_name_taken_twice_in_one_registry_is_refused() -> None:
    registry = CollectorRegistry(auto_describe=True)
    LoopCounter("t_total", "Doc.", [], registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        LoopHistogram("t_total", "Doc.", [], BUCKETS, registry=registry)


def test_the_shared_base_cannot_stand_alone() -> None:
    with pytest.raises(TypeError, match="abstract"):
        LoopMetric("t_total", "Doc.", [], registry=None)  # type: ignore[abstract]

"""Counters and histograms for the webhook path, counted without locks.

prometheus_client's metrics take a lock on every count and walk a histogram's buckets in
Python; the gateway counts several times per webhook, all of it on the event loop's thread
(handlers, the statusd call, the ``/metrics`` answer). :class:`LoopCounter` and
:class:`LoopHistogram` count with plain additions and a binary search instead, and expose
exactly what prometheus_client's ``Counter`` and ``Histogram`` would (same names, same
``le`` labels, no ``_created`` series), so dashboards and alerts see no difference.

Only the event loop's thread may count with them: two threads adding at once could lose a
count. Metrics counted from other threads stay prometheus_client's.
"""

from __future__ import annotations

from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_Child = TypeVar("_Child")


class CounterChild:
    """One label set's count."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class HistogramChild:
    """One label set's bucket counts (not cumulative: :meth:`LoopHistogram.collect` adds them
    up) and sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount (Prometheus buckets are "le").
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class LoopMetric(Collector, Generic[_Child]):
    """A metric's name, help and label names, registered once; one child per label set."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Child:
        """The child counting for these label values (made on first use)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child

    @abstractmethod
    def _new_child(self) -> _Child:
        """A fresh child for a new label set."""

    @abstractmethod
    def describe(self) -> list[Metric]:
        """The metric's family without samples (the registry checks names with it)."""


class LoopCounter(LoopMetric[CounterChild]):
    """A labelled counter (``name`` without ``_total``), like prometheus_client's Counter."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class LoopHistogram(LoopMetric[HistogramChild]):
    """A labelled histogram with fixed ``buckets`` (``+Inf`` added), like prometheus_client's
    Histogram."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = sorted(float(bound) for bound in buckets)
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self.bounds = tuple(bounds)
        self._le = tuple(floatToGoString(bound) for bound in bounds)  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            total = 0.0
            buckets = []
            for le, count in zip(self._le, child.counts, strict=True):
                total += count
                buckets.append((le, total))
            family.add_metric(values, buckets, child.sum)
        yield family

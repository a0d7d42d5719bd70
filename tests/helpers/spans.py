"""Traces in tests: dlrhub's spans recorded in memory (the SDK's InMemorySpanExporter)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

from dlrhub_common import tracing
from statusd import tracing as statusd_tracing


@contextlib.contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Traces on, every span kept in memory, for the duration (start servers inside it:
    whether to trace is decided when the gateway's routes and statusd's server are made)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.start(provider)
    try:
        yield exporter
    finally:
        tracing.stop()
        statusd_tracing.forget()
        provider.shutdown()


def named(
    exporter: InMemorySpanExporter, name: str, kind: SpanKind | None = None
) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.name == name and (kind is None or span.kind == kind)
    ]


def one(exporter: InMemorySpanExporter, name: str, kind: SpanKind | None = None) -> ReadableSpan:
    (span,) = named(exporter, name, kind)
    return span


async def finished(
    exporter: InMemorySpanExporter, name: str, count: int = 1, timeout: float = 10.0
) -> list[ReadableSpan]:
    """Waits until ``count`` spans named ``name`` have ended (some end after the answer)."""
    async with asyncio.timeout(timeout):
        while True:  # the exporter signals nothing: look again shortly
            found = named(exporter, name)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)

"""statusd's spans over real gRPC: an IngestReports call joins the trace its ``traceparent``
metadata names, its commit is a child span, calls sharing a group commit are linked to it,
refused calls record their code (never their details), and Watch deliveries find the trace
of recently committed reports only. The whole path from a webhook is in
tests/gateway/test_tracing.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub_common import tracing as common_tracing
from statusd import tracing
from statusd.server import Statusd
from statusd.storage.base import Change
from tests.helpers.failing_store import FullDiskStore
from tests.helpers.reports import filled, report
from tests.helpers.rpc import health
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.spans import finished, named, one, recorded_spans

INGEST = "dlrhub.v1.IngestService/IngestReports"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
DUPLICATE = ingest_pb.INGEST_OUTCOME_DUPLICATE
STORED = ingest_pb.INGEST_OUTCOME_STORED
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def traceparent(span_id: int) -> str:
    return f"00-{TRACE_ID}-{span_id:016x}-01"


async def ingest_traced(
    channel: grpc.aio.Channel, parent: str, *reports: pb.DeliveryReport
) -> ingest_pb.IngestReportsResponse:
    return await ingest_grpc.IngestServiceStub(channel).IngestReports(
        ingest_pb.IngestReportsRequest(reports=reports), metadata=(("traceparent", parent),)
    )


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def test_a_call_joins_the_trace_its_metadata_names(
    spans: InMemorySpanExporter, statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    await ingest_traced(channel, traceparent(7), report("m-1"))
    served = one(spans, INGEST, SpanKind.SERVER)
    assert served.context is not None
    assert served.parent is not None
    assert f"{served.context.trace_id:032x}" == TRACE_ID
    assert (served.parent.span_id, served.parent.is_remote) == (7, True)
    assert dict(served.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "dlrhub.v1.IngestService",
        "rpc.method": "IngestReports",
        "rpc.grpc.status_code": 0,
    }
    commit = one(spans, "store.commit")
    assert commit.parent is not None
    assert commit.parent.span_id == span_id(served)
    assert dict(commit.attributes or {}) == {
        "dlrhub.store": statusd.store.name,
        "dlrhub.reports": 1,
        "dlrhub.calls": 1,
    }


async def test_calls_sharing_a_commit_are_linked_to_it(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    settings = statusd_settings(tmp_path, group_commit_window_ms=300)
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        await asyncio.gather(
            *(ingest_traced(channel, traceparent(n), report(f"m-{n}")) for n in (1, 2, 3))
        )
        assert daemon.committer.commits == 1
    commit = one(spans, "store.commit")
    served = {span.parent.span_id: span for span in named(spans, INGEST) if span.parent}
    assert sorted(served) == [1, 2, 3]
    assert (commit.attributes or {})["dlrhub.calls"] == 3
    assert commit.parent is not None
    first = next(span for span in served.values() if span_id(span) == commit.parent.span_id)
    others = [span for span in served.values() if span is not first]
    assert sorted(link.context.span_id for link in commit.links) == sorted(map(span_id, others))
    for span in others:
        assert [link.context.span_id for link in span.links] == [span_id(commit)]


async def test_a_refused_call_records_its_code_not_its_details(
    spans: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest_traced(channel, traceparent(9), report("m-1", provider="nosuch"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (served,) = await finished(spans, INGEST)  # it ends after the status went out
    assert (served.attributes or {})[
        "rpc.grpc.status_code"
    ] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert served.status.status_code == StatusCode.UNSET  # the caller's error, not statusd's
    assert not served.events  # no exception message, which may quote the request
    assert not named(spans, "store.commit")


async def test_a_failed_commit_says_only_its_error_type(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    settings = statusd_settings(tmp_path)
    store = FullDiskStore(settings.sqlite_path)
    store.full = True
    async with (
        running_statusd(settings, store=store) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ingest_traced(channel, traceparent(4), report("m-1"))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        (served,) = await finished(spans, INGEST)
    commit = one(spans, "store.commit")
    assert (commit.status.status_code, commit.status.description) == (
        StatusCode.ERROR,
        "StoreUnavailable",
    )
    assert not commit.events  # the store's message names a path; another store's, data
    assert served.status.status_code == StatusCode.ERROR
    assert (served.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]


async def test_health_checks_are_not_traced(
    spans: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    assert await health(channel, "dlrhub.v1.IngestService") == SERVING
    await ingest_traced(channel, traceparent(5), report("m-1"))
    assert [span.name for span in named(spans, INGEST)] == [INGEST]
    assert {span.name for span in spans.get_finished_spans()} == {INGEST, "store.commit"}


def change(item: pb.DeliveryReport) -> Change:
    status = pb.MessageStatus(status=item.status)
    return Change(position="1", report=item, message_status=status)


def test_deliveries_find_the_trace_of_recent_reports_only(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "RECENT", 2)
    tracer = common_tracing.tracer
    assert tracer is not None
    old, duplicate, new, newer = filled(report("old"), report("dup"), report("new"), report("x"))
    with tracer.start_as_current_span("call") as call:
        tracing.committed(call, [old, duplicate], [STORED, DUPLICATE])
        tracing.committed(call, [new, newer], [STORED, STORED])
    with tracing.delivery(change(new)):
        pass
    sent = one(spans, tracing.WATCH_SEND)
    assert sent.parent is not None
    assert sent.parent.span_id == span_id(one(spans, "call"))
    for forgotten in (old, duplicate):  # pushed out by newer ones; made no change
        assert tracing.delivery(change(forgotten)) is tracing._NOTHING
    assert tracing.delivery(None) is tracing._NOTHING  # a heartbeat


def test_off_nothing_is_traced() -> None:
    assert common_tracing.tracer is None
    assert tracing.interceptors() == []
    assert tracing.current() is None
    assert tracing.delivery(change(report("m-1"))) is tracing._NOTHING
    with tracing.commit("sqlite", [None], 1):
        pass

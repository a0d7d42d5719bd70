"""The grpc_server_* metrics over real gRPC: unary calls with their codes, calls the token
check refuses, and Watch streams, which count when they end; and no ``_created`` series. The
hot-path helpers: a label set looked up once, outcome labels, and the final reports counted by
provider, country and status."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY, generate_latest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from statusd import metrics
from statusd.metrics import _measured
from tests.helpers.reports import report
from tests.helpers.rpc import ingest, read, watch
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.watching import started

INGEST_TOKEN = "ingest-token-0123456789"
INGEST = {"grpc_type": "unary", "grpc_service": "dlrhub.v1.IngestService"}
WATCH = {
    "grpc_type": "server_stream",
    "grpc_service": "dlrhub.v1.StatusService",
    "grpc_method": "WatchMessageStatuses",
}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "metric never moved"
        await asyncio.sleep(0.01)


async def test_unary_calls_count_by_code_with_their_handling_time(
    channel: grpc.aio.Channel,
) -> None:
    ingested = {**INGEST, "grpc_method": "IngestReports"}
    started_before = sample("grpc_server_started_total", **ingested)
    ok_before = sample("grpc_server_handled_total", **ingested, grpc_code="OK")
    bad_before = sample("grpc_server_handled_total", **ingested, grpc_code="INVALID_ARGUMENT")
    timed_before = sample("grpc_server_handling_seconds_count", **ingested)
    await ingest(channel, report("metrics-1"))
    unknown = report("metrics-2")
    unknown.provider = "nobody"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest(channel, unknown)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sample("grpc_server_started_total", **ingested) == started_before + 2
    assert sample("grpc_server_handled_total", **ingested, grpc_code="OK") == ok_before + 1
    bad = sample("grpc_server_handled_total", **ingested, grpc_code="INVALID_ARGUMENT")
    assert bad == bad_before + 1
    assert sample("grpc_server_handling_seconds_count", **ingested) == timed_before + 2


async def test_calls_the_token_check_refuses_are_counted(tmp_path: Path) -> None:
    labels = {**INGEST, "grpc_method": "IngestReports", "grpc_code": "UNAUTHENTICATED"}
    before = sample("grpc_server_handled_total", **labels)
    settings = statusd_settings(tmp_path, ingest_tokens=INGEST_TOKEN)
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        await ingest(channel, report("metrics-3"), token=INGEST_TOKEN)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ingest(channel, report("metrics-4"), token="not-a-token-0123456789")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert sample("grpc_server_handled_total", **labels) == before + 1


async def test_a_watch_stream_counts_when_it_ends_with_its_code(
    channel: grpc.aio.Channel,
) -> None:
    opened_before = sample("grpc_server_started_total", **WATCH)
    ended_before = sample("grpc_server_handled_total", **WATCH, grpc_code="CANCELLED")
    call, _ = await started(channel)
    assert sample("grpc_server_started_total", **WATCH) == opened_before + 1
    assert sample("grpc_server_handled_total", **WATCH, grpc_code="CANCELLED") == ended_before
    call.cancel()
    await until(
        lambda: (
            sample("grpc_server_handled_total", **WATCH, grpc_code="CANCELLED") == ended_before + 1
        )
    )
    invalid_before = sample("grpc_server_handled_total", **WATCH, grpc_code="INVALID_ARGUMENT")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read(watch(channel, resume_token="forged"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    invalid = sample("grpc_server_handled_total", **WATCH, grpc_code="INVALID_ARGUMENT")
    assert invalid == invalid_before + 1


async def test_no_created_series(channel: grpc.aio.Channel) -> None:
    await ingest(channel, report("metrics-5"))
    exported = generate_latest(REGISTRY).decode()
    assert f"{metrics.GRPC_HANDLED._name}_total{{" in exported  # a counter with samples
    assert "_created" not in exported


def test_a_failed_call_leaves_no_reference_cycle() -> None:
    """Recording how a call ended keeps no exception alive: a cycle per failed or cancelled
    call would leave every ended Watch stream to a full garbage-collector pass."""

    async def fails(request: object, context: object) -> None:
        raise ValueError("fails")

    measured = _measured(fails, ("unary", "dlrhub.v1.Test", "Fails"))
    labels = {"grpc_type": "unary", "grpc_service": "dlrhub.v1.Test", "grpc_method": "Fails"}
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            call = measured(None, None)
            with contextlib.suppress(ValueError):
                call.send(None)
            del call
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert sample("grpc_server_handled_total", **labels, grpc_code="UNKNOWN") >= 10


def final_reports(provider: str, status: str) -> float:
    labels = {"provider": provider, "country": "", "status": status}
    return REGISTRY.get_sample_value("dlrhub_final_reports_total", labels) or 0.0


def test_a_label_set_is_looked_up_once() -> None:
    first = metrics.child(metrics.COMMIT_LATENCY, "test-store")
    assert metrics.child(metrics.COMMIT_LATENCY, "test-store") is first
    assert metrics.child(metrics.COMMIT_LATENCY, "other-store") is not first


def test_outcome_labels() -> None:
    assert metrics.outcome_label(ingest_pb.INGEST_OUTCOME_STORED) == "stored"
    assert metrics.outcome_label(ingest_pb.INGEST_OUTCOME_DUPLICATE) == "duplicate"
    assert metrics.outcome_label(ingest_pb.INGEST_OUTCOME_STALE) == "stale"


def test_only_stored_final_reports_are_counted() -> None:
    final = pb.DeliveryReport(
        provider="telnyx", message_id="m1", status=pb.DELIVERY_STATUS_DELIVERED
    )
    pending = pb.DeliveryReport(provider="telnyx", message_id="m2", status=pb.DELIVERY_STATUS_SENT)
    before = final_reports("telnyx", "delivered")
    metrics.count_final_reports(
        [final, pending, final],
        [
            ingest_pb.INGEST_OUTCOME_STORED,
            ingest_pb.INGEST_OUTCOME_STORED,
            ingest_pb.INGEST_OUTCOME_DUPLICATE,
        ],
    )
    assert final_reports("telnyx", "delivered") == before + 1
    assert final_reports("telnyx", "sent") == 0

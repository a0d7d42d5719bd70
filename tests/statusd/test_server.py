"""statusd's process: readiness follows the store, start-up survives a store that is down, a
malformed MongoDB URI stops start-up with one clear message."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from statusd import server as server_module
from statusd.__main__ import main
from statusd.storage.mongo import MongoStore
from tests.helpers.mongomock_async import MockServer
from tests.helpers.reports import report
from tests.helpers.servers import running_statusd, statusd_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health(channel: grpc.aio.Channel, service: str = "dlrhub.v1.IngestService") -> int:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer: health_pb2.HealthCheckResponse = await check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return answer.status


async def becomes(channel: grpc.aio.Channel, wanted: int) -> None:
    """Polls health until it reports ``wanted`` (fails after about ten seconds)."""
    for _ in range(1000):
        if await health(channel) == wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"health never became {wanted}")


async def ingest(channel: grpc.aio.Channel, message_id: str) -> ingest_pb.IngestReportsResponse:
    stub = ingest_grpc.IngestServiceStub(channel)
    request = ingest_pb.IngestReportsRequest(reports=[report(message_id)])
    return await stub.IngestReports(request, timeout=10)


async def test_readiness_follows_a_mongodb_that_comes_and_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server_module, "HEALTH_INTERVAL_SECONDS", 0.02)
    mongodb = MockServer(replica_set=True)
    mongodb.down = True  # not reachable when statusd starts
    store = MongoStore(mongodb.client())
    with caplog.at_level(logging.INFO, logger="statusd.server"):
        async with (
            running_statusd(statusd_settings(tmp_path), store=store) as daemon,
            grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
        ):
            assert await health(channel) == NOT_SERVING
            assert await health(channel, "dlrhub.v1.StatusService") == NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await ingest(channel, "early")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(0.1)  # a few more attempts to open, all failing
            mongodb.down = False
            await becomes(channel, SERVING)
            assert (await ingest(channel, "m-1")).stored == 1
            mongodb.down = True  # an outage later
            await becomes(channel, NOT_SERVING)
            with pytest.raises(grpc.aio.AioRpcError) as during:
                await ingest(channel, "during")
            assert during.value.code() == grpc.StatusCode.UNAVAILABLE
            mongodb.down = False
            await becomes(channel, SERVING)
            assert (await ingest(channel, "during")).stored == 1
    lines = [record.getMessage() for record in caplog.records]
    unreachable = [line for line in lines if line.startswith("store not reachable")]
    assert len(unreachable) == 1  # one line per reason, not one per attempt
    assert "mongodb open failed: ServerSelectionTimeoutError" in unreachable[0]
    assert sum(line.startswith("store unavailable") for line in lines) == 1
    assert sum(line == "store available again" for line in lines) == 1


def test_a_malformed_mongodb_uri_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_MONGODB_URI", "mongodb://dlrhub:s3cret@db:port/")
    monkeypatch.setenv("DLRHUB_STATUSD_METRICS_PORT", "0")
    with pytest.raises(SystemExit) as stopped:
        main()
    message = str(stopped.value.code)
    assert message.startswith("dlrhub-statusd: bad configuration: DLRHUB_MONGODB_URI: ")
    assert "s3cret" not in message

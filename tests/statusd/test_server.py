"""statusd's process: readiness follows the store (pings and commits), start-up survives a
store that is down, a malformed MongoDB URI stops start-up with one clear message, the SQLite
WAL is truncated when idle."""

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
from tests.helpers.failing_store import FullDiskStore
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


async def test_readiness_turns_not_serving_after_failed_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: pings succeed, commits fail. After three failed commits in a row readiness
    is NOT_SERVING (and stays so while pings succeed); a write probe or a commit that
    succeeds brings it back."""
    monkeypatch.setattr(server_module, "HEALTH_INTERVAL_SECONDS", 0.05)
    store = FullDiskStore(tmp_path / "statusd.sqlite3")
    settings = statusd_settings(tmp_path, health_commit_failures=3)
    async with (
        running_statusd(settings, store=store) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        await becomes(channel, SERVING)
        store.full = True
        for attempt in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await ingest(channel, f"full-{attempt}")
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        await asyncio.sleep(0.2)  # pings succeed meanwhile
        assert await health(channel) == SERVING  # two failures are no outage yet
        with pytest.raises(grpc.aio.AioRpcError):
            await ingest(channel, "full-2")
        await becomes(channel, NOT_SERVING)
        assert await health(channel, "dlrhub.v1.StatusService") == NOT_SERVING
        probes = store.write_probes
        await asyncio.sleep(0.3)  # several health rounds: pings would pass, write probes fail
        assert store.write_probes > probes
        assert await health(channel) == NOT_SERVING
        assert await health(channel, "") == SERVING  # liveness: the process is fine
        store.full = False
        await becomes(channel, SERVING)
        assert (await ingest(channel, "after")).stored == 1


async def test_a_successful_commit_restores_readiness_at_once(tmp_path: Path) -> None:
    store = FullDiskStore(tmp_path / "statusd.sqlite3")
    settings = statusd_settings(tmp_path, health_commit_failures=1)
    async with (
        running_statusd(settings, store=store) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        store.full = True
        with pytest.raises(grpc.aio.AioRpcError):
            await ingest(channel, "full")
        await becomes(channel, NOT_SERVING)
        store.full = False
        assert (await ingest(channel, "ok")).stored == 1  # health rounds are 2 s apart
        await becomes(channel, SERVING)


async def test_the_wal_is_truncated_after_a_quiet_spell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEALTH_INTERVAL_SECONDS", 0.05)
    settings = statusd_settings(tmp_path, store_idle_seconds=0.3)
    wal = tmp_path / "statusd.sqlite3-wal"
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        for index in range(50):
            await ingest(channel, f"w-{index}")
        assert wal.stat().st_size > 50 * 4096  # one page or more per commit
        for _ in range(200):
            if wal.stat().st_size == 0:
                break
            await asyncio.sleep(0.02)
        assert wal.stat().st_size == 0
        assert (await ingest(channel, "after")).stored == 1

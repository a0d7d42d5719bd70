"""Bearer tokens over real gRPC: every service, every kind of credential; health stays open."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd.auth import bearer_token
from statusd.server import Statusd
from tests.helpers.reports import report
from tests.helpers.rpc import health, ingest, reflected_services, status_stub
from tests.helpers.servers import running_statusd, statusd_settings

INGEST_TOKENS = "ingest-old,ingest-new"
READ_TOKENS = "reader-1"
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

Metadata = tuple[tuple[str, str], ...]
Call = Callable[[grpc.aio.Channel, Metadata], Awaitable[object]]


@pytest.fixture
async def statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    settings = statusd_settings(tmp_path, ingest_tokens=INGEST_TOKENS, read_tokens=READ_TOKENS)
    async with running_statusd(settings) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        await ingest(opened, report("known"), token="ingest-new")
        yield opened


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def ingest_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = ingest_pb.IngestReportsRequest(reports=[report("via-ingest")])
    return await ingest_grpc.IngestServiceStub(channel).IngestReports(request, metadata=metadata)


async def get_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.GetMessageStatusRequest(provider="infobip", message_id="known")
    return await status_stub(channel).GetMessageStatus(request, metadata=metadata)


async def batch_get_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.BatchGetMessageStatusesRequest(
        keys=[pb.MessageKey(provider="infobip", message_id="known")]
    )
    return await status_stub(channel).BatchGetMessageStatuses(request, metadata=metadata)


async def list_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.ListMessageStatusesRequest()
    return await status_stub(channel).ListMessageStatuses(request, metadata=metadata)


async def watch_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    call = status_stub(channel).WatchMessageStatuses(
        status_pb.WatchMessageStatusesRequest(), metadata=metadata
    )
    try:
        return await call.read()  # the first heartbeat, or the refusal
    finally:
        call.cancel()


async def code_of(call: Call, channel: grpc.aio.Channel, metadata: Metadata) -> grpc.StatusCode:
    try:
        await call(channel, metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return OK


STATUS_CALLS = [get_call, batch_get_call, list_call, watch_call]
CREDENTIALS: dict[str, Metadata] = {
    "none": (),
    "wrong": bearer("not-a-token"),
    "not bearer": (("authorization", "Basic cmVhZGVyLTE="),),
    "empty bearer": (("authorization", "Bearer "),),
    "reader": bearer("reader-1"),
    "gateway": bearer("ingest-old"),
    "gateway, rotated": bearer("ingest-new"),
}
#: What each credential gets from (IngestService, StatusService).
EXPECTED = {
    "none": (UNAUTHENTICATED, UNAUTHENTICATED),
    "wrong": (UNAUTHENTICATED, UNAUTHENTICATED),
    "not bearer": (UNAUTHENTICATED, UNAUTHENTICATED),
    "empty bearer": (UNAUTHENTICATED, UNAUTHENTICATED),
    "reader": (DENIED, OK),
    "gateway": (OK, DENIED),
    "gateway, rotated": (OK, DENIED),
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
async def test_auth_matrix(channel: grpc.aio.Channel, credential: str) -> None:
    metadata = CREDENTIALS[credential]
    ingest_expected, status_expected = EXPECTED[credential]
    assert await code_of(ingest_call, channel, metadata) == ingest_expected
    for call in STATUS_CALLS:
        assert await code_of(call, channel, metadata) == status_expected, call.__name__


async def test_refusals_explain_themselves(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get_call(channel, ())
    assert "authorization: Bearer" in (missing.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await get_call(channel, bearer("ingest-old"))
    assert "StatusService" in (other.value.details() or "")
    assert "ingest-old" not in (other.value.details() or "")


async def test_health_and_reflection_stay_open(channel: grpc.aio.Channel) -> None:
    for service in ("", "dlrhub.v1.IngestService", "dlrhub.v1.StatusService"):
        assert await health(channel, service) == health_pb2.HealthCheckResponse.SERVING
    assert {"dlrhub.v1.IngestService", "dlrhub.v1.StatusService"} <= await reflected_services(
        channel
    )


async def test_one_service_protected_leaves_the_other_open(tmp_path: Path) -> None:
    settings = statusd_settings(tmp_path, ingest_tokens="only-ingest")
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        assert daemon.auth.protected == frozenset({"dlrhub.v1.IngestService"})
        assert await code_of(ingest_call, channel, ()) == UNAUTHENTICATED
        assert await code_of(ingest_call, channel, bearer("only-ingest")) == OK
        await ingest(channel, report("known"), token="only-ingest")
        for call in STATUS_CALLS:
            assert await code_of(call, channel, ()) == OK, call.__name__


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None

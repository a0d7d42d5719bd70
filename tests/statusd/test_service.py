"""IngestService and StatusService over real gRPC on loopback."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from statusd.server import Statusd
from statusd.storage.base import StoreUnavailable
from tests.helpers.reports import report
from tests.helpers.rpc import health, ingest, reflected_services

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
SENT = pb.DELIVERY_STATUS_SENT


async def get(
    channel: grpc.aio.Channel, message_id: str = "m-1", *, full: bool = False, account: str = ""
) -> pb.MessageStatus:
    stub = status_grpc.StatusServiceStub(channel)
    view = pb.MESSAGE_STATUS_VIEW_FULL if full else pb.MESSAGE_STATUS_VIEW_UNSPECIFIED
    response = await stub.GetMessageStatus(
        status_pb.GetMessageStatusRequest(
            provider="infobip", message_id=message_id, account=account, view=view
        )
    )
    return response.message_status


async def test_ingest_counts_and_outcomes(channel: grpc.aio.Channel) -> None:
    delivered = report(status=DELIVERED, event_offset=20)
    sent = report(status=SENT, event_offset=10)
    first = await ingest(channel, delivered)
    assert (first.stored, first.duplicates, first.stale) == (1, 0, 0)
    second = await ingest(channel, delivered, sent)
    assert (second.stored, second.duplicates, second.stale) == (0, 1, 1)
    assert list(second.outcomes) == [
        ingest_pb.INGEST_OUTCOME_DUPLICATE,
        ingest_pb.INGEST_OUTCOME_STALE,
    ]


async def test_get_basic_and_full_views(channel: grpc.aio.Channel) -> None:
    await ingest(
        channel, report(status=SENT, event_offset=1), report(status=DELIVERED, event_offset=2)
    )
    basic = await get(channel)
    assert basic.status == DELIVERED
    assert basic.report_count == 2
    assert len(basic.history) == 0
    assert basic.latest_report.event_id.startswith("sha256:")
    full = await get(channel, full=True)
    assert [item.status for item in full.history] == [SENT, DELIVERED]


async def test_unknown_message_is_not_found(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get(channel, "never-seen")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never-seen" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider": ""}, "reports[0].provider"),
        ({"provider": "no-such-provider"}, "reports[0].provider"),
        ({"message_id": ""}, "reports[0].message_id"),
        ({"status": pb.DELIVERY_STATUS_UNSPECIFIED}, "reports[0].status"),
        ({"status": 99}, "reports[0].status"),
        ({"message_id": "x" * 2000}, "reports[0].message_id"),
    ],
)
async def test_invalid_reports_are_rejected_naming_the_field(
    channel: grpc.aio.Channel, change: dict[str, object], field: str
) -> None:
    bad = report()
    for name, value in change.items():
        setattr(bad, name, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest(channel, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


def provider_series(name: str) -> list[str]:
    """Every exported sample (of any metric) that carries ``provider=name``."""
    return [
        sample.name
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("provider") == name
    ]


async def test_unknown_providers_are_refused_before_any_metric_series(
    channel: grpc.aio.Channel,
) -> None:
    """A made-up provider name must not become a label: each one would be a new series."""
    invented = f"x-{uuid.uuid4().hex[:12]}"
    stub = ingest_grpc.IngestServiceStub(channel)
    requests = [
        ingest_pb.IngestReportsRequest(reports=[report("m-1"), report("m-2", provider=invented)]),
        ingest_pb.IngestReportsRequest(
            quarantined_items=[pb.QuarantinedItem(provider=invented, reason="r", raw="{}")]
        ),
    ]
    for request in requests:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.IngestReports(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert invented in (caught.value.details() or "")
        assert "infobip" in (caught.value.details() or "")  # names the known ones
    assert provider_series(invented) == []
    with pytest.raises(grpc.aio.AioRpcError):  # nothing of the refused call was stored
        await get(channel, "m-1")
    await ingest(channel, report("m-1"))
    assert provider_series("infobip")  # a known provider is counted as before


async def test_get_requires_provider_and_message_id(channel: grpc.aio.Channel) -> None:
    stub = status_grpc.StatusServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetMessageStatus(status_pb.GetMessageStatusRequest(message_id="m"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider" in (caught.value.details() or "")


async def test_received_time_is_filled_when_missing(channel: grpc.aio.Channel) -> None:
    bare = pb.DeliveryReport(provider="infobip", message_id="m-1", status=DELIVERED)
    await ingest(channel, bare)
    stored = await get(channel)
    assert stored.latest_report.received_time.seconds > 0


async def test_health_and_reflection(statusd: Statusd, channel: grpc.aio.Channel) -> None:
    for service in ("", "dlrhub.v1.IngestService", "dlrhub.v1.StatusService"):
        assert await health(channel, service) == health_pb2.HealthCheckResponse.SERVING
    assert {"dlrhub.v1.IngestService", "dlrhub.v1.StatusService"} <= await reflected_services(
        channel
    )


async def test_graceful_stop_turns_health_not_serving(statusd: Statusd) -> None:
    await statusd.health.enter_graceful_shutdown()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        answer = await check(health_pb2.HealthCheckRequest(service="dlrhub.v1.IngestService"))
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_liveness_ignores_the_store_while_readiness_follows_it(
    statusd: Statusd, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )

    async def outage() -> None:
        raise StoreUnavailable("disk gone")

    monkeypatch.setattr(statusd.store, "ping", outage)  # the store goes away under statusd
    for _ in range(200):  # the next health check (every HEALTH_INTERVAL_SECONDS) notices
        ingest = await check(health_pb2.HealthCheckRequest(service="dlrhub.v1.IngestService"))
        if ingest.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.05)
    whole = await check(health_pb2.HealthCheckRequest(service=""))
    assert whole.status == health_pb2.HealthCheckResponse.SERVING
    assert ingest.status == health_pb2.HealthCheckResponse.NOT_SERVING

"""Small gRPC helpers shared by the statusd, client and CLI tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc

#: A channel that reads ahead very little: a stream it does not read soon blocks the server's
#: writes (by default gRPC buffers megabytes for a client that is not reading).
STALLING_OPTIONS = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]

WatchCall = grpc.aio.UnaryStreamCall[
    status_pb.WatchMessageStatusesRequest, status_pb.WatchMessageStatusesResponse
]


async def ingest(
    channel: grpc.aio.Channel, *reports: pb.DeliveryReport, token: str = ""
) -> ingest_pb.IngestReportsResponse:
    stub = ingest_grpc.IngestServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    return await stub.IngestReports(
        ingest_pb.IngestReportsRequest(reports=reports), metadata=metadata
    )


def watch(channel: grpc.aio.Channel, resume_token: str = "", **filters: Any) -> WatchCall:
    request = status_pb.WatchMessageStatusesRequest(resume_token=resume_token, **filters)
    return status_stub(channel).WatchMessageStatuses(request)


def status_stub(channel: grpc.aio.Channel) -> status_grpc.StatusServiceAsyncStub:
    return status_grpc.StatusServiceStub(channel)


async def read(call: WatchCall, timeout: float = 10.0) -> status_pb.WatchMessageStatusesResponse:
    """The next response; fails the test when the stream ended or nothing came in time."""
    response = await asyncio.wait_for(call.read(), timeout)
    assert response is not grpc.aio.EOF, "the stream ended"
    assert isinstance(response, status_pb.WatchMessageStatusesResponse)
    return response


async def read_changes(
    call: WatchCall, count: int, timeout: float = 20.0
) -> list[status_pb.WatchMessageStatusesResponse]:
    """The next ``count`` changes, skipping heartbeats."""
    changes: list[status_pb.WatchMessageStatusesResponse] = []
    while len(changes) < count:
        response = await read(call, timeout)
        if response.HasField("message_status"):
            changes.append(response)
    return changes


async def health(channel: grpc.aio.Channel, service: str) -> int:
    """What grpc.health.v1.Health/Check answers for ``service`` (no credentials sent)."""
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer = await check(health_pb2.HealthCheckRequest(service=service))
    status: int = answer.status
    return status


async def reflected_services(channel: grpc.aio.Channel) -> set[str]:
    """The services server reflection lists (no credentials sent)."""
    reflect = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    async for response in call:
        return {service.name for service in response.list_services_response.service}
    return set()

"""Small gRPC helpers shared by the statusd, client and CLI tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc

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

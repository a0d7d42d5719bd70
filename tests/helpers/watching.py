"""Opening and draining Watch streams in tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from dlrhub.v1 import status_service_pb2 as status_pb
from tests.helpers.rpc import WatchCall, read, watch


async def started(
    channel: grpc.aio.Channel, **filters: Any
) -> tuple[WatchCall, status_pb.WatchMessageStatusesResponse]:
    """A watch and its first response (the heartbeat naming the start)."""
    call = watch(channel, **filters)
    first = await read(call)
    assert not first.HasField("message_status")
    assert first.resume_token
    return call, first


async def drain(call: WatchCall) -> tuple[list[str], str, grpc.aio.AioRpcError]:
    """Reads until the stream fails: the message ids it carried, the last token, the error."""
    delivered: list[str] = []
    token = ""
    while True:
        try:
            response = await read(call)
        except grpc.aio.AioRpcError as error:
            return delivered, token, error
        token = response.resume_token
        if response.HasField("message_status"):
            delivered.append(response.report.message_id)


async def when_available(channel: grpc.aio.Channel, resume_token: str = "") -> WatchCall:
    """A watch opened once statusd stops answering UNAVAILABLE (as the client retries)."""
    for _ in range(200):
        call = watch(channel, resume_token=resume_token)
        try:
            await read(call)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.05)
        else:
            return call
    raise AssertionError("Watch stayed unavailable")

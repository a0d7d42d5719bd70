"""Watch fan-out: subscribers each hold a WatchMessageStatuses stream while reports arrive
through the gateway at a steady rate; the latency of a delivery is the subscriber's receive
time minus the report's received_time (the gateway's clock, on the same machine)."""

from __future__ import annotations

import asyncio
import time

import grpc
import httpx

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc


async def subscriber(
    target: str, expected: int, latencies: list[float], ready: asyncio.Event, stop_at: float
) -> int:
    received = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stream = status_grpc.StatusServiceStub(channel).WatchMessageStatuses(
            status_pb.WatchMessageStatusesRequest(provider="infobip")
        )
        ready.set()
        try:
            async for change in stream:
                if not change.HasField("report"):
                    continue  # a heartbeat
                received_ns = time.time_ns()
                latencies.append((received_ns - change.report.received_time.ToNanoseconds()) / 1e9)
                received += 1
                if received >= expected or time.monotonic() > stop_at:
                    break
        finally:
            stream.cancel()
    return received


async def run(
    target: str,
    gateway_url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    *,
    subscribers: int,
    rate: float,
) -> dict[str, object]:
    latencies: list[float] = []
    readiness = [asyncio.Event() for _ in range(subscribers)]
    stop_at = time.monotonic() + len(bodies) / rate + 30
    tasks = [
        asyncio.create_task(subscriber(target, len(bodies), latencies, event, stop_at))
        for event in readiness
    ]
    await asyncio.gather(*(event.wait() for event in readiness))
    await asyncio.sleep(0.5)  # streams are registered with statusd
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        started = time.monotonic()
        for index, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            response = await http.post("/webhooks/infobip", content=body, headers=headers)
            response.raise_for_status()
    counts = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return {
        "deliveries": sum(counts),
        "expected": len(bodies) * subscribers,
        "latencies": latencies,
    }

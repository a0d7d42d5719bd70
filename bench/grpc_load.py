"""GetMessageStatus load: several client processes, each with a few calls in flight, for a
fixed time; prints one JSON line of counts and latencies. Run by ``python -m bench``."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import grpc

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc


async def run(
    target: str, ids: list[str], provider: str, duration: float, concurrency: int
) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration
    async with grpc.aio.insecure_channel(target) as channel:
        stub = status_grpc.StatusServiceStub(channel)
        rng = random.Random()

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                request = status_pb.GetMessageStatusRequest(
                    provider=provider, message_id=rng.choice(ids)
                )
                started = time.perf_counter()
                try:
                    await stub.GetMessageStatus(request, timeout=5)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"calls": len(latencies), "errors": errors, "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--ids", required=True, help="file with one message id per line")
    parser.add_argument("--provider", default="infobip")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with open(args.ids, encoding="utf-8") as handle:
        ids = [line.strip() for line in handle if line.strip()]
    result = asyncio.run(run(args.target, ids, args.provider, args.duration, args.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Ingest latency with and without open Watch streams (``python -m bench --only watch-load``).

Two client processes beside statusd, so that neither measures the other's event loop:

* ``ingest``: IngestReports (one report a call) at a fixed rate for a fixed time, each call
  timed from send to answer; prints one JSON line of latencies.
* ``streams``: opens N WatchMessageStatuses streams (no filter: every change goes to every
  stream, the worst case) through the client library, which resumes a stream that statusd
  ends; prints ``ready`` once every stream got its first response, then, when stdin closes,
  one JSON line of counts.

The scenario runs ``ingest`` with no stream open, then opens the streams and runs ``ingest``
again, and then both once more: same statusd, same store, same rate. Every step has a time
limit; the streams close between the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc

from bench.processes import Usage
from dlrhub.client.retry import RESUMABLE
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc

if TYPE_CHECKING:
    from bench.scenarios import Bench, Result

#: Streams per channel (one client, one HTTP/2 connection).
STREAMS_PER_CHANNEL = 100
OPEN_TIMEOUT = 5.0
RESUME_PAUSE = 1.0


async def ingest(target: str, rate: float, duration: float) -> dict[str, object]:
    """Calls at ``rate`` per second for ``duration`` seconds (open loop: a slow answer does
    not delay the next call)."""
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (seconds into the run, latency ms)
    errors: dict[str, int] = {}
    prefix = uuid.uuid4().hex[:8]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        await stub.IngestReports(ingest_pb.IngestReportsRequest(), timeout=10)  # connected

        async def call(index: int) -> None:
            report = pb.DeliveryReport(
                provider="infobip",
                message_id=f"load-{prefix}-{index}",
                status=pb.DELIVERY_STATUS_DELIVERED,
            )
            started = time.perf_counter()
            try:
                await stub.IngestReports(
                    ingest_pb.IngestReportsRequest(reports=[report]), timeout=10
                )
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1
                return
            latencies.append(time.perf_counter() - started)
            timeline.append((round(started - began_perf, 3), round(latencies[-1] * 1000, 1)))

        calls = []
        began = time.monotonic()
        began_perf = time.perf_counter()
        for index in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
            calls.append(asyncio.create_task(call(index)))
        await asyncio.gather(*calls)
    slowest = sorted(timeline, key=lambda item: -item[1])[:10]
    return {"calls": len(calls), "latencies": latencies, "errors": errors, "slowest": slowest}


async def _hold(
    tasks: list[asyncio.Task[None]],
    *,
    channels: list[grpc.aio.Channel],
    all_open: asyncio.Event,
    count: int,
    counts: dict[str, int],
    limit: float,
) -> None:
    """Says "ready" once every stream is open, then holds them until stdin closes."""
    try:
        try:
            await asyncio.wait_for(all_open.wait(), timeout=limit)
        except TimeoutError:
            raise TimeoutError(
                f"{counts['opened']} of {count} streams opened in {limit:g} s"
            ) from None
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), timeout=limit)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()


async def streams(target: str, count: int, limit: float) -> dict[str, object]:
    """Holds ``count`` streams until stdin closes (or ``limit`` seconds pass). A stream that
    statusd ends with UNAVAILABLE or RESOURCE_EXHAUSTED resumes from its last token after a
    pause, as the client library does; one whose first response does not come within
    ``OPEN_TIMEOUT`` seconds is opened again (a stream opened among thousands at once
    sometimes never starts)."""
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(-(-count // STREAMS_PER_CHANNEL))
    ]
    counts = {"opened": 0, "changes": 0, "resumed": 0, "reopened": 0}
    ends: dict[str, int] = {}
    all_open = asyncio.Event()

    async def follow(channel: grpc.aio.Channel) -> None:
        stub = status_grpc.StatusServiceStub(channel)
        token, first = "", True
        while True:
            call = stub.WatchMessageStatuses(
                status_pb.WatchMessageStatusesRequest(resume_token=token)
            )
            try:
                response = await asyncio.wait_for(call.read(), OPEN_TIMEOUT)
                while response is not grpc.aio.EOF:
                    assert isinstance(response, status_pb.WatchMessageStatusesResponse)
                    if first:
                        first = False
                        counts["opened"] += 1
                        if counts["opened"] == count:
                            all_open.set()
                    token = response.resume_token
                    counts["changes"] += response.HasField("message_status")
                    response = await call.read()
            except TimeoutError:
                counts["reopened"] += 1
                continue
            except grpc.aio.AioRpcError as error:
                ends[error.code().name] = ends.get(error.code().name, 0) + 1
                if error.code() not in RESUMABLE:
                    raise
            finally:
                call.cancel()
            counts["resumed"] += 1
            await asyncio.sleep(RESUME_PAUSE * (0.5 + random.random()))

    tasks = [
        asyncio.create_task(follow(channels[index // STREAMS_PER_CHANNEL]))
        for index in range(count)
    ]
    await _hold(
        tasks, channels=channels, all_open=all_open, count=count, counts=counts, limit=limit
    )
    return {"streams": count, **counts, "ended": ends}


def _client(bench: Bench, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.watch_load", *args]
    command += ["--target", f"127.0.0.1:{bench.grpc_port}"]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ingest_phase(bench: Bench) -> dict[str, Any]:
    args = bench.args
    duration = str(args.watch_load_seconds)
    worker = _client(bench, "ingest", "--rate", str(args.watch_load_rate), "--duration", duration)
    out, _ = worker.communicate(timeout=args.watch_load_seconds + 60)
    result: dict[str, Any] = json.loads(out)
    return result


def scenario(bench: Bench) -> list[Result]:
    """Ingest latency with no stream open, then with ``--watch-load-streams`` open, twice
    (the machine's other work shows as the difference between the two rounds)."""
    from bench.scenarios import Result, percentile

    args = bench.args
    results = []
    for streams in (0, args.watch_load_streams) * 2:
        holder = None
        if streams:
            holder = _client(bench, "streams", "--count", str(streams))
            assert holder.stdout is not None
            line = holder.stdout.readline().strip()  # "ready", or the JSON of a failure
            if line != "ready":
                holder.kill()
                raise RuntimeError(f"watch streams did not open: {line}")
        try:
            usage = Usage([bench.statusd])
            run = _ingest_phase(bench)
            used = usage.finish()
        finally:
            held: dict[str, Any] = {}
            if holder is not None:
                out, _ = holder.communicate(input="", timeout=60)
                held = json.loads(out.strip().splitlines()[-1])
        latencies = sorted(run["latencies"])
        results.append(
            Result(
                scenario=f"IngestReports at {args.watch_load_rate:g}/s, {streams} Watch streams",
                requests_per_second=round(len(latencies) / args.watch_load_seconds, 1),
                reports_per_second=round(len(latencies) / args.watch_load_seconds, 1),
                p50_ms=round(percentile(latencies, 50) * 1000, 2),
                p99_ms=round(percentile(latencies, 99) * 1000, 2),
                p999_ms=round(percentile(latencies, 99.9) * 1000, 2),
                usage=used,
                verified="ok" if not run["errors"] else f"errors {run['errors']}",
                notes={
                    "calls": run["calls"],
                    "slowest": run["slowest"],
                    "loadavg": os.getloadavg()[0],
                    **held,
                },
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.watch_load")
    parser.add_argument("role", choices=["ingest", "streams"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--rate", type=float, default=100.0, help="ingest calls per second")
    parser.add_argument("--duration", type=float, default=10.0, help="ingest seconds")
    parser.add_argument("--count", type=int, default=2000, help="streams to hold")
    parser.add_argument("--limit", type=float, default=120.0, help="streams: most seconds")
    args = parser.parse_args()
    if args.role == "ingest":
        result = asyncio.run(ingest(args.target, args.rate, args.duration))
    else:
        result = asyncio.run(streams(args.target, args.count, args.limit))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""``python -m bench.flood``: what a flood costs the gateway, on loopback, bounded in count and
time. Starts statusd and the gateway of this checkout, then:

- ``flood``: pauses statusd (SIGSTOP), sends ``--webhooks`` concurrent correctly signed
  Infobip webhooks of ``--items`` reports each plus ``--slow`` uploads that trickle a body of
  almost ``DLRHUB_MAX_BODY_BYTES`` and never finish it, samples the gateway's RSS from /proc
  throughout, and reports the peak, the RSS once every client is done (statusd still paused),
  and the answers by status;
- ``stall``: sends hostile unsigned JSON bodies to the SNS endpoint (which reads JSON before
  it can verify), while a probe asks ``/healthz`` back to back: reports each body's answer
  and time, and the probe's worst latency meanwhile (the event loop's stall).

statusd is resumed and every process stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import requests as generated
from bench.processes import BIN, Process, free_port, http_ok, port_open

SNS_TOPIC = "arn:aws:sns:eu-west-1:123456789012:dlrhub-flood"
MIB = 1024 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


Body = Callable[[asyncio.StreamWriter], Awaitable[None]]


def whole(body: bytes) -> Body:
    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(body)

    return send


def trickled(size: int) -> Body:
    """All but the last of ``size`` bytes, in 64 KiB chunks ten times a second."""

    async def send(writer: asyncio.StreamWriter) -> None:
        chunk = b" " * (64 * 1024)
        try:
            for start in range(0, size - 1, len(chunk)):
                writer.write(chunk[: min(len(chunk), size - 1 - start)])
                await writer.drain()
                await asyncio.sleep(0.1)
        except OSError:
            pass  # answered early and closed: its answer may still be there to read

    return send


async def exchange(port: int, head: bytes, body: Body, timeout: float) -> int:
    """Sends one request; returns the answer's status (0: none read, the connection closed or
    reset, or no answer in time)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return 0
    try:
        writer.write(head)
        await body(writer)
        line = await asyncio.wait_for(reader.readline(), timeout)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()


def request_head(path: str, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Sampler:
    """The gateway's RSS every 50 ms, until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mib(self.pid))
            await asyncio.sleep(0.05)

    def stop(self) -> float:
        self.task.cancel()
        return self.peak


async def flood(args: argparse.Namespace, gateway: Process, port: int) -> dict[str, Any]:
    webhooks = list(generated.infobip("flood", args.webhooks, args.items))
    before = rss_mib(gateway.pid)
    sampler = Sampler(gateway.pid)
    started = time.monotonic()
    sends = [
        exchange(
            port, request_head(w.path, len(w.body.encode()), w.headers), whole(w.body.encode()), 30
        )
        for w in webhooks
    ]
    slow_head = request_head(
        "/webhooks/infobip", args.body_bytes, {"Content-Type": "application/json"}
    )
    slow = [exchange(port, slow_head, trickled(args.body_bytes), 30) for _ in range(args.slow)]
    answers = await asyncio.wait_for(asyncio.gather(*sends, *slow), args.limit_seconds)
    elapsed = time.monotonic() - started
    await asyncio.sleep(args.settle_seconds)  # statusd still paused
    after = rss_mib(gateway.pid)
    peak = sampler.stop()
    return {
        "rss_mib": {"before": round(before), "peak": round(peak), "after": round(after)},
        "webhook_answers": dict(Counter(answers[: len(sends)])),
        "slow_upload_answers": dict(Counter(answers[len(sends) :])),
        "seconds": round(elapsed, 1),
    }


def hostile_bodies(size: int) -> dict[str, bytes]:
    """Valid JSON bodies of about ``size`` bytes, built to be expensive before
    authentication: nesting beyond the limit ahead of many arrays (which a walk of the decoded
    tree visits first), many small arrays, many strings full of escapes and brackets."""

    def filled(head: bytes, item: bytes, tail: bytes) -> bytes:
        count = max(1, (size - len(head) - len(tail)) // (len(item) + 1))
        return head + b",".join([item] * count) + tail

    deep = b"[" * 40 + b"]" * 40
    interleaved = b"[[]," * 40 + b"1" + b"]" * 40
    return {
        "deep-first-then-flat": filled(b"[" + deep + b",", b"[]", b"]"),
        "interleaved-deep-then-flat": filled(b"[" + interleaved + b",", b"[]", b"]"),
        "flat-arrays": filled(b"[", b"[]", b"]"),
        "escaped-strings": filled(b"[[[", b'"\\"["', b"]]]"),
    }


async def probe_healthz(port: int, done: asyncio.Event) -> float:
    """Asks /healthz back to back until ``done``; returns the slowest answer's seconds."""
    worst = 0.0
    while not done.is_set():
        start = time.perf_counter()
        await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", whole(b""), 10)
        worst = max(worst, time.perf_counter() - start)
    return worst


async def stall(args: argparse.Namespace, port: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
    }
    for name, body in hostile_bodies(args.body_bytes).items():
        done = asyncio.Event()
        prober = asyncio.create_task(probe_healthz(port, done))
        await asyncio.sleep(0.3)
        start = time.perf_counter()
        head = request_head("/webhooks/aws-sns", len(body), headers)
        status = await exchange(port, head, whole(body), 30)
        took = time.perf_counter() - start
        done.set()
        results[name] = {
            "status": status,
            "answer_ms": round(took * 1000, 1),
            "worst_healthz_ms": round(await prober * 1000, 1),
        }
    return results


def start(workdir: Path, args: argparse.Namespace) -> tuple[Process, Process, int]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **generated.ENV,
        "DLRHUB_STATUSD_PORT": str(grpc_port),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        "DLRHUB_GATEWAY_PORT": str(http_port),
        "DLRHUB_SQLITE_PATH": str(workdir / "flood.sqlite3"),
        "DLRHUB_LOG_LEVEL": "warning",
        "DLRHUB_AWS_SNS_TOPIC_ARNS": SNS_TOPIC,
        "DLRHUB_MAX_BODY_BYTES": str(args.body_bytes),
        "DLRHUB_REQUEST_TIMEOUT_SECONDS": str(args.request_timeout),
    }
    statusd = Process("statusd", [str(BIN / "dlrhub-statusd")], env, workdir / "statusd.log")
    statusd.wait_until(lambda: port_open(grpc_port))
    gateway = Process("gateway", [str(BIN / "dlrhub-gateway")], env, workdir / "gateway.log")
    gateway.wait_until(lambda: http_ok(f"http://127.0.0.1:{http_port}/healthz"))
    return statusd, gateway, http_port


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("mode", choices=("flood", "stall"))
    parser.add_argument("--webhooks", type=int, default=400)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--body-bytes", type=int, default=MIB)
    parser.add_argument("--limit-seconds", type=float, default=60.0)
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--request-timeout", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlrhub-flood-") as tmp:
        statusd, gateway, port = start(Path(tmp), args)
        try:
            if args.mode == "flood":
                os.kill(statusd.pid, signal.SIGSTOP)
                result = asyncio.run(flood(args, gateway, port))
            else:
                result = asyncio.run(stall(args, port))
        finally:
            os.kill(statusd.pid, signal.SIGCONT)
            gateway.stop()
            statusd.stop()
    print(json.dumps({"mode": args.mode, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's scenarios: the processes under test, wrk, h2load and the Python clients,
and the check that every acknowledged report was stored."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import requests as generated
from bench.processes import BIN, Process, Usage, free_port, http_ok, per_unit, port_open
from bench.watch import run as watch_run
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb

ROOT = Path(__file__).parent
LUA = ROOT / "wrk" / "replay.lua"


@dataclass
class Result:
    scenario: str
    requests_per_second: float = 0.0
    reports_per_second: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    verified: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: HTTP webhooks, comparable with the ceiling (the other scenarios are gRPC).
    webhook: bool = False


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.public_url = "http://127.0.0.1"
        self.processes: list[Process] = []

    # -- processes --------------------------------------------------------------------------

    def start_stack(self) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.public_url = f"http://127.0.0.1:{self.http_port}"
        self.database = self.workdir / "bench.sqlite3"
        env = {
            **generated.ENV,
            "DLRHUB_STATUSD_PORT": str(self.grpc_port),
            "DLRHUB_STATUSD_METRICS_PORT": "0",
            "DLRHUB_GATEWAY_PORT": str(self.http_port),
            "DLRHUB_SQLITE_PATH": str(self.database),
            "DLRHUB_LOG_LEVEL": "warning",
            "DLRHUB_NONCE_CACHE_SIZE": "1000000",
            # watch-load holds this many streams, all from one address.
            "DLRHUB_WATCH_MAX_STREAMS": str(max(2000, self.args.watch_load_streams)),
            "DLRHUB_WATCH_MAX_STREAMS_PER_CLIENT": str(max(2000, self.args.watch_load_streams)),
        }
        self.statusd = Process(
            "statusd", [str(BIN / "dlrhub-statusd")], env, self.workdir / "statusd.log"
        )
        self.processes.append(self.statusd)
        self.statusd.wait_until(lambda: port_open(self.grpc_port))
        self.gateway = Process(
            "gateway", [str(BIN / "dlrhub-gateway")], env, self.workdir / "gateway.log"
        )
        self.processes.append(self.gateway)
        self.gateway.wait_until(lambda: http_ok(f"{self.public_url}/healthz"))

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    # -- wrk --------------------------------------------------------------------------------

    def wrk(self, name: str, url: str, requests_file: Path, delay_ms: float = 0) -> dict[str, Any]:
        summary = self.workdir / f"{name}.summary.json"
        acked = self.workdir / f"{name}.acked"
        env = {
            **os.environ,
            "BENCH_REQUESTS": str(requests_file),
            "BENCH_SUMMARY": str(summary),
            "BENCH_ACKED": str(acked),
            "BENCH_THREADS": str(self.args.threads),
            "BENCH_DELAY_MS": str(delay_ms),
        }
        command = [
            "wrk",
            f"-t{self.args.threads}",
            f"-c{self.args.connections}",
            f"-d{self.args.duration}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ]
        subprocess.run(
            command, env=env, check=True, capture_output=True, timeout=self.args.duration + 60
        )
        result: dict[str, Any] = json.loads(summary.read_text())
        ids: list[str] = []
        for index in range(self.args.threads):
            part = Path(f"{acked}.{index}")
            if part.exists():
                ids += part.read_text().split()
        result["acked"] = ids
        return result

    def webhook_scenario(self, name: str, make: Any, count: int, delay_ms: float = 0) -> Result:
        requests_file = self.workdir / f"{name}.requests"
        index = generated.write(make(name, count), requests_file)
        usage = Usage([self.gateway, self.statusd])
        run = self.wrk(name, self.public_url, requests_file, delay_ms)
        result = self.from_wrk(name, run, usage.finish())
        acked = run["acked"]
        reports = sum(len(index[request_id]) for request_id in acked)
        seconds = run["duration_us"] / 1e6
        result.reports_per_second = round(reports / seconds, 1)
        per_unit(result.usage, len(acked), reports)
        result.verified = self.verify(index, acked)
        result.notes.update(acked_requests=len(acked), acked_reports=reports, generated=len(index))
        if len(acked) >= len(index):
            result.notes["warning"] = "requests file exhausted: raise --requests"
        return result

    def from_wrk(
        self, name: str, run: dict[str, Any], usage: dict[str, dict[str, float]]
    ) -> Result:
        seconds = run["duration_us"] / 1e6
        errors = {key: value for key, value in run.items() if key.startswith("errors_") and value}
        return Result(
            scenario=name,
            requests_per_second=round(len(run["acked"]) / seconds, 1),
            p50_ms=run["p50_us"] / 1000,
            p99_ms=run["p99_us"] / 1000,
            p999_ms=run["p999_us"] / 1000,
            usage=usage,
            notes={"wrk_requests": run["requests"], **errors},
            webhook=True,
        )

    def verify(self, index: dict[str, tuple[tuple[str, str], ...]], acked: list[str]) -> str:
        """Every acknowledged request's reports must be in the store."""
        wanted = {pair for request_id in acked for pair in index[request_id]}
        uri = f"file:{self.database}?mode=ro"
        with sqlite3.connect(uri, uri=True) as connection:
            stored = set(connection.execute("SELECT provider, message_id FROM messages").fetchall())
        missing = wanted - stored
        return "ok" if not missing else f"MISSING {len(missing)} of {len(wanted)}"

    # -- scenarios --------------------------------------------------------------------------

    def ceiling(self) -> Result:
        """Bare Sanic answering 200: what the HTTP framework and wrk cost on their own."""
        return self.sanic_alone("ceiling", "ceiling (bare Sanic, 1 worker)", [])

    def transport_floor(self) -> Result:
        """Bare Sanic whose webhooks each wait for a coalesced unary IngestReports call to a
        servicer that keeps nothing (:mod:`bench.hop`): the design's transport without any
        of dlrhub's work, so the gap to a real scenario is dlrhub's own cost."""
        hop_port = free_port()
        hop = Process(
            "statusd",
            [sys.executable, "-m", "bench.hop", str(hop_port)],
            {},
            self.workdir / "hop.log",
        )
        try:
            hop.wait_until(lambda: port_open(hop_port))
            return self.sanic_alone(
                "floor",
                "transport floor (bare Sanic + coalesced gRPC, nothing kept)",
                [str(hop_port)],
                [hop],
            )
        finally:
            hop.stop()

    def sanic_alone(
        self, name: str, title: str, argv: list[str], others: Sequence[Process] = ()
    ) -> Result:
        port = free_port()
        sanic = Process(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling", str(port), *argv],
            {},
            self.workdir / f"{name}.log",
        )
        try:
            sanic.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
            requests_file = self.workdir / f"{name}.requests"
            generated.write(generated.infobip(name, self.args.requests, 1), requests_file)
            usage = Usage([sanic, *others])
            run = self.wrk(name, f"http://127.0.0.1:{port}", requests_file)
            result = self.from_wrk(title, run, usage.finish())
            per_unit(result.usage, len(run["acked"]), len(run["acked"]))
            result.verified = "n/a"
            return result
        finally:
            sanic.stop()

    def get_status(self, ids: list[str]) -> Result:
        ids_file = self.workdir / "ids.txt"
        ids_file.write_text("\n".join(ids))
        usage = Usage([self.statusd])
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.grpc_load",
                    "--target",
                    f"127.0.0.1:{self.grpc_port}",
                    "--ids",
                    str(ids_file),
                    "--duration",
                    str(self.args.duration),
                    "--concurrency",
                    "16",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(self.args.grpc_clients)
        ]
        outputs = [
            json.loads(worker.communicate(timeout=self.args.duration + 60)[0]) for worker in workers
        ]
        latencies = sorted(latency for output in outputs for latency in output["latencies"])
        calls = sum(output["calls"] for output in outputs)
        return Result(
            scenario=f"GetMessageStatus ({self.args.grpc_clients} client processes)",
            requests_per_second=round(calls / self.args.duration, 1),
            p50_ms=round(percentile(latencies, 50) * 1000, 2),
            p99_ms=round(percentile(latencies, 99) * 1000, 2),
            p999_ms=round(percentile(latencies, 99.9) * 1000, 2),
            usage=usage.finish(),
            verified="ok" if not sum(o["errors"] for o in outputs) else "errors",
            notes={"calls": calls, "errors": sum(output["errors"] for output in outputs)},
        )

    def stored_ids(self, limit: int) -> list[str]:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT message_id FROM messages WHERE provider = 'infobip' LIMIT ?", (limit,)
            ).fetchall()
        return [row[0] for row in rows]

    def get_status_h2load(self, message_id: str) -> Result:
        """The same call from h2load (a C HTTP/2 client): statusd's own capacity, without
        Python clients competing for the two cores."""
        request = status_pb.GetMessageStatusRequest(provider="infobip", message_id=message_id)
        body = request.SerializeToString()
        frame = self.workdir / "get.bin"
        frame.write_bytes(b"\x00" + len(body).to_bytes(4, "big") + body)
        usage = Usage([self.statusd])
        started = time.monotonic()
        run = subprocess.run(
            [
                "h2load",
                "-D",
                str(self.args.duration),
                "-c",
                "8",
                "-m",
                "32",
                "-t",
                "1",
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "-d",
                str(frame),
                f"http://127.0.0.1:{self.grpc_port}/dlrhub.v1.StatusService/GetMessageStatus",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=self.args.duration + 60,
        )
        elapsed = time.monotonic() - started
        done = int(re.search(r"(\d+) succeeded", run.stdout).group(1))  # type: ignore[union-attr]
        mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", run.stdout)
        return Result(
            scenario="GetMessageStatus (h2load, C client)",
            requests_per_second=round(done / elapsed, 1),
            p50_ms=h2load_millis(mean.group(1)) if mean else 0.0,
            usage=usage.finish(),
            verified="ok" if " 0 failed" in run.stdout else "errors",
            notes={"calls": done, "latency": "mean, in the p50 column"},
        )

    def watch(self) -> Result:
        count = self.args.watch_reports
        bodies = [request.body.encode() for request in generated.infobip("watch", count, 1)]
        headers = next(generated.infobip("watch-headers", 1, 1)).headers
        usage = Usage([self.gateway, self.statusd])
        outcome = asyncio.run(
            watch_run(
                f"127.0.0.1:{self.grpc_port}",
                self.public_url,
                headers,
                bodies,
                subscribers=self.args.watch_subscribers,
                rate=self.args.watch_rate,
            )
        )
        latencies: list[float] = sorted(outcome["latencies"])  # type: ignore[call-overload]
        delivered = int(outcome["deliveries"])  # type: ignore[call-overload]
        expected = int(outcome["expected"])  # type: ignore[call-overload]
        return Result(
            scenario=(
                f"Watch fan-out ({self.args.watch_subscribers} subscribers, "
                f"{self.args.watch_rate:g} reports/s)"
            ),
            requests_per_second=round(delivered / (count / self.args.watch_rate), 1),
            p50_ms=round(percentile(latencies, 50) * 1000, 2),
            p99_ms=round(percentile(latencies, 99) * 1000, 2),
            p999_ms=round(percentile(latencies, 99.9) * 1000, 2),
            usage=usage.finish(),
            verified="ok"
            if delivered == expected
            else f"MISSING {expected - delivered} of {expected}",
            notes={"deliveries": delivered, "expected": expected},
        )


async def seed(target: str, count: int) -> None:
    """Stores ``count`` single-report messages straight through IngestService."""
    reports = [
        pb.DeliveryReport(
            provider="infobip", message_id=f"seed-{index}", status=pb.DELIVERY_STATUS_DELIVERED
        )
        for index in range(count)
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingest_grpc.IngestServiceStub(channel)
        for start in range(0, count, 500):
            request = ingest_pb.IngestReportsRequest(reports=reports[start : start + 500])
            await stub.IngestReports(request, timeout=30)


def h2load_millis(text: str) -> float:
    """h2load's ``1.23ms`` / ``456us`` / ``1.2s`` as milliseconds."""
    for suffix, factor in (("ms", 1.0), ("us", 0.001), ("s", 1000.0)):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return 0.0


def percentile(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * percent / 100))]

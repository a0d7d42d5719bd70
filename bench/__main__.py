"""``python -m bench`` (``make bench``): every scenario against statusd + gateway on loopback
(SQLite, synchronous=FULL), measured side by side with a bare-Sanic ceiling in the same run.

For each webhook scenario wrk replays pre-signed requests; every acknowledged request is then
looked up in the store (a fast wrong answer is a failure). Prints a markdown table and writes
JSON to bench/results/. Every run is bounded in time and stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import requests as generated
from bench.processes import BIN, Process, Usage, free_port, http_ok, port_open
from bench.watch import run as watch_run

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
        result = self._from_wrk(name, run, usage.finish())
        acked = run["acked"]
        reports = sum(len(index[request_id]) for request_id in acked)
        seconds = run["duration_us"] / 1e6
        result.reports_per_second = round(reports / seconds, 1)
        result.verified = self.verify(index, acked)
        result.notes.update(acked_requests=len(acked), acked_reports=reports, generated=len(index))
        if len(acked) >= len(index):
            result.notes["warning"] = "requests file exhausted: raise --requests"
        return result

    def _from_wrk(
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
        port = free_port()
        ceiling = Process(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling", str(port)],
            {},
            self.workdir / "ceiling.log",
        )
        try:
            ceiling.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
            requests_file = self.workdir / "ceiling.requests"
            generated.write(generated.infobip("ceiling", self.args.requests, 1), requests_file)
            usage = Usage([ceiling])
            run = self.wrk("ceiling", f"http://127.0.0.1:{port}", requests_file)
            result = self._from_wrk("ceiling (bare Sanic, 1 worker)", run, usage.finish())
            result.verified = "n/a"
            return result
        finally:
            ceiling.stop()

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
            p50_ms=round(_percentile(latencies, 50) * 1000, 2),
            p99_ms=round(_percentile(latencies, 99) * 1000, 2),
            p999_ms=round(_percentile(latencies, 99.9) * 1000, 2),
            usage=usage.finish(),
            verified="ok" if not sum(o["errors"] for o in outputs) else "errors",
            notes={"calls": calls, "errors": sum(output["errors"] for output in outputs)},
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
            p50_ms=round(_percentile(latencies, 50) * 1000, 2),
            p99_ms=round(_percentile(latencies, 99) * 1000, 2),
            p999_ms=round(_percentile(latencies, 99.9) * 1000, 2),
            usage=usage.finish(),
            verified="ok"
            if delivered == expected
            else f"MISSING {expected - delivered} of {expected}",
            notes={"deliveries": delivered, "expected": expected},
        )


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * percent / 100))]


HEADER = (
    "| scenario | req/s | reports/s | vs ceiling | p50 ms | p99 ms | p99.9 ms "
    "| CPU s (gw / statusd) | peak RSS MiB (gw / statusd) | stored |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def table(results: list[Result], ceiling: float) -> str:
    lines = [HEADER]
    for result in results:
        gateway = result.usage.get("gateway", result.usage.get("ceiling", {}))
        statusd = result.usage.get("statusd", {})
        ratio = f"{result.requests_per_second / ceiling:.0%}" if ceiling else "-"
        lines.append(
            f"| {result.scenario} | {result.requests_per_second:,.0f} "
            f"| {result.reports_per_second:,.0f} | {ratio} "
            f"| {result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.p999_ms:.1f} "
            f"| {gateway.get('cpu_seconds', '-')} / {statusd.get('cpu_seconds', '-')} "
            f"| {gateway.get('peak_rss_mib', '-')} / {statusd.get('peak_rss_mib', '-')} "
            f"| {result.verified} |"
        )
    return "\n".join(lines)


def single(name: str, count: int) -> Any:
    return generated.infobip(name, count, 1)


def scenarios(bench: Bench, args: argparse.Namespace) -> list[Result]:
    """Runs the chosen scenarios against the started stack, in order."""
    chosen = set(args.only)
    results: list[Result] = []
    if not chosen or "single" in chosen:
        first = bench.webhook_scenario("infobip-single", single, args.requests)
        results.append(first)
        half = first.requests_per_second / 2
        delay_ms = max(1.0, (args.connections / max(half, 1.0) - first.p50_ms / 1000) * 1000)
        steady = bench.webhook_scenario("infobip-single-half-rate", single, args.requests, delay_ms)
        steady.scenario = f"infobip single report at ~half rate (target {half:,.0f} req/s)"
        results.append(steady)
    if not chosen or "batch" in chosen:
        batch = bench.webhook_scenario(
            "infobip-batch50", lambda n, c: generated.infobip(n, c, 50), args.requests // 20
        )
        results.append(batch)
    if not chosen or "plivo" in chosen:
        plivo = bench.webhook_scenario(
            "plivo", lambda n, c: generated.plivo(n, c, bench.public_url), args.requests
        )
        results.append(plivo)
    if not chosen or "get" in chosen:
        with sqlite3.connect(f"file:{bench.database}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT message_id FROM messages WHERE provider = 'infobip' LIMIT 20000"
            ).fetchall()
        results.append(bench.get_status([row[0] for row in rows]))
    if not chosen or "watch" in chosen:
        results.append(bench.watch())
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--requests", type=int, default=150_000, help="pre-signed requests per scenario"
    )
    parser.add_argument("--grpc-clients", type=int, default=2)
    parser.add_argument("--watch-subscribers", type=int, default=100)
    parser.add_argument("--watch-rate", type=float, default=200.0)
    parser.add_argument("--watch-reports", type=int, default=1000)
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        ceiling = bench.ceiling()
        results = [ceiling]
        try:
            bench.start_stack()
            results += scenarios(bench, args)
        finally:
            bench.stop_all()
    ceiling_rate = ceiling.requests_per_second
    print(table(results, ceiling_rate))
    out = ROOT / "results" / time.strftime("bench-%Y%m%d-%H%M%S.json")
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "settings": vars(args),
                "results": [result.__dict__ for result in results],
            },
            indent=2,
        )
    )
    print(f"\nresults: {out.relative_to(ROOT.parent)}")
    failed = [result.scenario for result in results if result.verified not in ("ok", "n/a")]
    if failed:
        print(f"verification FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

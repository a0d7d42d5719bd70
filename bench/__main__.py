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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import requests as generated
from bench import watch_load
from bench.scenarios import ROOT, Bench, Result, seed

HEADER = (
    "| scenario | req/s | reports/s | vs ceiling | p50 ms | p99 ms | p99.9 ms "
    "| CPU s (gw / statusd) | CPU µs/request (gw / statusd) | CPU µs/report (gw / statusd) "
    "| peak RSS MiB (gw / statusd) | stored |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


#: Scenarios that run without wrk and h2load.
WITHOUT_WRK = frozenset({"watch-load"})


def pair(gateway: dict[str, float], statusd: dict[str, float], key: str) -> str:
    """One column's ``gateway / statusd`` figures, ``-`` where a process has none."""
    return " / ".join(
        f"{figures[key]:,.0f}"
        if key.startswith("cpu_us") and key in figures
        else str(figures.get(key, "-"))
        for figures in (gateway, statusd)
    )


def table(results: list[Result], ceiling: float) -> str:
    lines = [HEADER]
    for result in results:
        gateway = result.usage.get("gateway", result.usage.get("ceiling", {}))
        statusd = result.usage.get("statusd", {})
        ratio = f"{result.requests_per_second / ceiling:.0%}" if ceiling and result.webhook else "-"
        lines.append(
            f"| {result.scenario} | {result.requests_per_second:,.0f} "
            f"| {result.reports_per_second:,.0f} | {ratio} "
            f"| {result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.p999_ms:.1f} "
            f"| {pair(gateway, statusd, 'cpu_seconds')} "
            f"| {pair(gateway, statusd, 'cpu_us_per_request')} "
            f"| {pair(gateway, statusd, 'cpu_us_per_report')} "
            f"| {pair(gateway, statusd, 'peak_rss_mib')} "
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
    if not chosen or "plivo" in chosen:
        # One report per webhook as a signed form body: the commonest provider shape.
        plivo = bench.webhook_scenario(
            "plivo-single-form", lambda n, c: generated.plivo(n, c, bench.public_url), args.requests
        )
        results.append(plivo)
    if not chosen or "batch" in chosen:
        batch = bench.webhook_scenario(
            "infobip-batch50", lambda n, c: generated.infobip(n, c, 50), args.requests // 20
        )
        results.append(batch)
    if not chosen or "get" in chosen:
        ids = bench.stored_ids(20_000)
        if len(ids) < 1000:  # run alone: store some messages to read first
            asyncio.run(seed(f"127.0.0.1:{bench.grpc_port}", 5000))
            ids = bench.stored_ids(20_000)
        results.append(bench.get_status(ids))
        results.append(bench.get_status_h2load(ids[0]))
    if not chosen or "watch" in chosen:
        results.append(bench.watch())
    if not chosen or "watch-load" in chosen:
        results += watch_load.scenario(bench)
    return results


def baselines(bench: Bench, alone: bool) -> list[Result]:
    """The ceiling, then the transport floor; a placeholder ceiling when only scenarios that
    compare with themselves run (``alone``)."""
    if alone:
        return [Result("ceiling (not run)", verified="n/a")]
    return [bench.ceiling(), bench.transport_floor()]


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
    parser.add_argument("--watch-rate", type=float, default=50.0)
    parser.add_argument("--watch-reports", type=int, default=1000)
    parser.add_argument("--watch-load-streams", type=int, default=2000)
    parser.add_argument("--watch-load-rate", type=float, default=100.0)
    parser.add_argument("--watch-load-seconds", type=float, default=10.0)
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="scenario names to run: single batch plivo get watch watch-load",
    )
    args = parser.parse_args()
    # watch-load needs neither tool, and compares with itself rather than with the ceiling.
    alone = bool(args.only) and set(args.only) <= WITHOUT_WRK
    missing = [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]
    if missing and not alone:
        print(f"{' and '.join(missing)} not installed (make bench installs them)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        results = baselines(bench, alone)
        ceiling = results[0]
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

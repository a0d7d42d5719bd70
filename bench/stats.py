"""``python -m bench.stats``: GetDeliveryStats over gRPC on a large SQLite store.

Fills a fresh SQLite store with ``--messages`` messages (1,000,000 by default) straight into
the file (one bulk insert with the indexes dropped, the statistics groups set as the writer
sets them, then the store's own indexes rebuilt: seconds instead of the hours a million
RegisterMessages and reports would take) spread over ``--days`` days of submit times: six
providers, a dozen destination countries, statuses in
realistic shares (delivered, undelivered with error codes, rejected, unknown, NO_REPORT,
still awaiting a receipt) and log-normal receipt latencies. Then starts a real statusd on the
file and times GetDeliveryStats for the newest 24 hours and for the whole range, with several
group_by combinations and both time bases, each ``--repeat`` times (best and median kept).
Every answer is checked against plain SQL counts of the same window, so a fast wrong answer
fails the run. Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.processes import BIN, Process, free_port, port_open
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from statusd import model
from statusd.storage.sqlite import SqliteStore
from statusd.storage.sqlite_stats import fill_groups

ROOT = Path(__file__).parent
HOUR = 3_600_000_000
PROVIDERS = ["infobip", "plivo", "twilio", "vonage", "sinch", "telnyx"]
COUNTRIES = ["GB", "US", "DE", "FR", "IN", "BR", "NG", "ZA", "JP", "AU", "MX", ""]
#: ``(status, share, error codes)``: what became of the messages.
FATES = [
    (pb.DELIVERY_STATUS_DELIVERED, 0.80, [""]),
    (pb.DELIVERY_STATUS_UNDELIVERED, 0.08, ["1", "30", "32", "40"]),
    (pb.DELIVERY_STATUS_REJECTED, 0.02, ["61", "62"]),
    (pb.DELIVERY_STATUS_UNKNOWN, 0.02, [""]),
    (pb.DELIVERY_STATUS_NO_REPORT, 0.05, [""]),
    (pb.DELIVERY_STATUS_SENT, 0.03, [""]),
]
DIMENSIONS = status_pb.StatsDimension
#: ``(label, group_by)`` of the timed calls.
GROUPINGS = [
    ("total only", []),
    ("provider", [DIMENSIONS.Value("STATS_DIMENSION_PROVIDER")]),
    (
        "provider, country",
        [DIMENSIONS.Value("STATS_DIMENSION_PROVIDER"), DIMENSIONS.Value("STATS_DIMENSION_COUNTRY")],
    ),
    (
        "all five",
        [DIMENSIONS.Value(f"STATS_DIMENSION_{name}") for name in ("PROVIDER", "ACCOUNT")]
        + [DIMENSIONS.Value(f"STATS_DIMENSION_{n}") for n in ("COUNTRY", "STATUS", "ERROR_CODE")],
    ),
]
_COLUMNS = (
    "provider, account, message_id, status, order_key, latest, first_seen, updated,"
    " report_count, terminal_mask, submit_time, registered_at, report_deadline, country,"
    " final_time, error_code, recipient"
)


def _templates() -> dict[int, tuple[str, bytes]]:
    """A representative current entry (order key, serialized report) for each status."""
    made: dict[int, tuple[str, bytes]] = {}
    for status, _, _ in FATES:
        report = pb.DeliveryReport(
            provider="infobip",
            message_id="0" * 36,
            status=status,
            provider_status="DELIVERED_TO_HANDSET",
            recipient="+447700900123",
            client_ref="order-1234567",
            raw='{"messageId":"' + "0" * 36 + '","status":{"groupName":"DELIVERED"}}',
        )
        report.event_time.FromMicroseconds(1_767_225_600_000_000)
        filled = model.with_event_id(report)
        made[status] = (model.order_key(filled), filled.SerializeToString())
    return made


def rows(count: int, days: int, end: int, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    """The message rows: submit times uniform over the ``days`` before ``end``."""
    rnd = random.Random(seed)
    templates = _templates()
    statuses = [status for status, _, _ in FATES]
    weights = [share for _, share, _ in FATES]
    codes = {status: choices for status, _, choices in FATES}
    span = days * 24 * HOUR
    for number in range(count):
        submit = end - 1 - rnd.randrange(span)
        status = rnd.choices(statuses, weights)[0]
        final = None
        if status not in (pb.DELIVERY_STATUS_NO_REPORT, pb.DELIVERY_STATUS_SENT):
            final = submit + int(rnd.lognormvariate(16.0, 1.3))  # median about 9 s
        order_key, blob = templates[status]
        updated = final or submit
        yield (
            rnd.choice(PROVIDERS),
            rnd.choice(["", "", "", "eu"]),
            f"{number:036d}",
            status,
            order_key,
            blob,
            submit + rnd.randrange(1_000_000),  # first seen: stored just after submission
            updated,
            0 if final is None else 2,
            0,
            submit,
            submit,
            submit + 72 * HOUR,
            rnd.choice(COUNTRIES),
            final,
            rnd.choice(codes[status]),
            f"+4477009{number % 100000:05d}",
        )


def fill(path: Path, count: int, days: int, end: int) -> float:
    """Creates the store at ``path`` and bulk-inserts the messages; returns the seconds."""
    started = time.perf_counter()

    async def create() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.close()

    asyncio.run(create())
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    connection.execute("BEGIN")
    for name, _ in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    connection.executemany(
        f"INSERT INTO messages ({_COLUMNS}) VALUES ({', '.join('?' * 17)})",  # noqa: S608
        rows(count, days, end),
    )
    fill_groups(connection)  # what the writer sets with every write
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return time.perf_counter() - started


def expected_total(path: Path, basis: str, start: int, end: int) -> tuple[int, int, int]:
    """``(messages, delivered, final)`` of a window by plain SQL, to check the answers."""
    connection = sqlite3.connect(path)
    try:
        found = connection.execute(
            "SELECT count(*), total(status = 4), total(final_time IS NOT NULL OR status = 10)"  # noqa: S608
            f" FROM messages WHERE {basis} >= ? AND {basis} < ?",
            (start, end),
        ).fetchone()
    finally:
        connection.close()
    return int(found[0]), int(found[1]), int(found[2])


async def timed_calls(
    target: str, path: Path, windows: dict[str, tuple[int, int]], repeat: int
) -> list[dict[str, Any]]:
    """Times each (window, basis, grouping) ``repeat`` times and checks its total."""
    results = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = status_grpc.StatusServiceStub(channel)
        for window, (start, end) in windows.items():
            for basis_name, basis, column in [
                ("submit", status_pb.STATS_TIME_BASIS_SUBMIT_TIME, "submit_time"),
                ("first seen", status_pb.STATS_TIME_BASIS_FIRST_SEEN_TIME, "first_seen"),
            ]:
                want = expected_total(path, column, start, end)
                for label, group_by in GROUPINGS:
                    request = status_pb.GetDeliveryStatsRequest(time_basis=basis, group_by=group_by)
                    request.start_time.FromMicroseconds(start)
                    request.end_time.FromMicroseconds(end)
                    seconds = []
                    for _ in range(repeat):
                        began = time.perf_counter()
                        response = await stub.GetDeliveryStats(request, timeout=120)
                        seconds.append(time.perf_counter() - began)
                    total = response.total
                    got = (total.message_count, total.delivered_count, total.final_count)
                    results.append(
                        {
                            "window": window,
                            "basis": basis_name,
                            "group_by": label,
                            "messages": total.message_count,
                            "groups": len(response.groups),
                            "best_ms": round(min(seconds) * 1000, 1),
                            "median_ms": round(statistics.median(seconds) * 1000, 1),
                            "verified": "ok" if got == want else f"MISMATCH {got} != {want}",
                        }
                    )
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| window | basis | group_by | messages | groups | best ms | median ms | verified |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['window']} | {r['basis']} | {r['group_by']} | {r['messages']:,} "
            f"| {r['groups']:,} | {r['best_ms']:,.1f} | {r['median_ms']:,.1f} | {r['verified']} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    end = int(datetime.now(UTC).timestamp()) * 1_000_000
    path = workdir / "stats.sqlite3"
    print(f"filling {args.messages:,} messages over {args.days} days ...", file=sys.stderr)
    seconds = fill(path, args.messages, args.days, end)
    print(f"filled in {seconds:.1f} s ({path.stat().st_size / 2**20:,.0f} MiB)", file=sys.stderr)
    port = free_port()
    env = {
        "DLRHUB_STATUSD_PORT": str(port),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        "DLRHUB_SQLITE_PATH": str(path),
        "DLRHUB_LOG_LEVEL": "warning",
        # The bench reads only: no report-timeout sweep while it measures.
        "DLRHUB_REPORT_SWEEP_SECONDS": "3600",
    }
    statusd = Process("statusd", [str(BIN / "dlrhub-statusd")], env, workdir / "statusd.log")
    try:
        statusd.wait_until(lambda: port_open(port), timeout=120)
        windows = {"24 h": (end - 24 * HOUR, end), "whole range": (0, end + HOUR)}
        return asyncio.run(timed_calls(f"127.0.0.1:{port}", path, windows, args.repeat))
    finally:
        statusd.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7, help="submit times span this many days")
    parser.add_argument("--repeat", type=int, default=3, help="calls per measurement")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-stats-") as tmp:
        results = run(args, Path(tmp))
    print(table(results))
    if not args.no_save:
        out = ROOT / "results" / time.strftime("stats-%Y%m%d-%H%M%S.json")
        machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
        out.write_text(
            json.dumps({"machine": machine, "settings": vars(args), "results": results}, indent=2)
        )
        print(f"\nresults: {out.relative_to(ROOT.parent)}")
    return 0 if all(r["verified"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

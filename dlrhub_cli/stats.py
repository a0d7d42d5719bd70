"""``dlrhub stats``: delivery statistics from statusd (GetDeliveryStats), as a table or JSON."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration

from dlrhub.client import DlrhubError
from dlrhub.client.client import BASES, DIMENSIONS
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_cli import connect, render
from dlrhub_common.status_names import status_label

_AGO = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The count columns of the table, after the group columns.
COUNT_HEADINGS = (
    "MESSAGES",
    "DELIVERED",
    "NO REPORT",
    "FINAL",
    "DELIVERY",
    "NO-REPORT",
    "P50",
    "P90",
    "P99",
    "LATENCIES",
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "stats",
        help="delivery statistics: counts, delivery and no-report rates, receipt latency",
        description="Delivery statistics of the messages submitted (or first seen) in a window.",
    )
    parser.add_argument(
        "--since", type=when, default="24h", help="window start: 24h, 7d, 90m ago, or RFC 3339"
    )
    parser.add_argument("--until", type=when, default=None, help="window end (default: now)")
    parser.add_argument(
        "--by",
        type=dimensions,
        default=[],
        help=f"group by, comma-separated: {','.join(DIMENSIONS)}",
    )
    parser.add_argument(
        "--basis", choices=sorted(BASES), default="submit", help="which time the window selects"
    )
    parser.add_argument("--provider", default="", help="only this provider")
    parser.add_argument("--account", default="", help="only this account")
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    connect.add_flags(parser)


def when(text: str, now: datetime | None = None) -> datetime:
    """``24h``/``7d``/``30m``/``90s``/``2w`` ago, or an RFC 3339 time with a zone."""
    found = _AGO.match(text.strip())
    if found:
        amount, unit = int(found[1]), _UNITS[found[2]]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration ago (24h, 7d) or an RFC 3339 time: {text!r}"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return parsed


def dimensions(text: str) -> list[str]:
    names = [name.strip().lower().replace("-", "_") for name in text.split(",") if name.strip()]
    for name in names:
        if name not in DIMENSIONS:
            raise argparse.ArgumentTypeError(
                f"not a dimension: {name!r}; one of {', '.join(DIMENSIONS)}"
            )
    return names


def duration_text(duration: Duration) -> str:
    """A latency for people: 850ms, 12.3s, 4m05s, 2h10m, 3d04h."""
    micros = duration.ToMicroseconds()
    if micros < 1_000_000:
        return f"{micros / 1000:.0f}ms" if micros >= 1000 else f"{micros}us"
    seconds = micros / 1_000_000
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def _cells(group: status_pb.DeliveryStatsGroup, columns: Sequence[str]) -> list[str]:
    keys = []
    for column in columns:
        value = getattr(group, column)
        keys.append(status_label(value).upper() if column == "status" else (value or "-"))
    return [
        *keys,
        str(group.message_count),
        str(group.delivered_count),
        str(group.no_report_count),
        str(group.final_count),
        f"{group.delivery_rate:.1%}",
        f"{group.no_report_rate:.1%}",
        *(
            duration_text(duration) if group.latency_count else "-"
            for duration in (
                group.receipt_latency_p50,
                group.receipt_latency_p90,
                group.receipt_latency_p99,
            )
        ),
        str(group.latency_count),
    ]


def table(response: status_pb.GetDeliveryStatsResponse, columns: Sequence[str]) -> str:
    """The groups and the total as aligned columns (text left, numbers right)."""
    headings = [*(column.upper().replace("_", " ") for column in columns), *COUNT_HEADINGS]
    rows = [_cells(group, columns) for group in response.groups]
    total = _cells(response.total, ())
    rows.append(["TOTAL", *[""] * (len(columns) - 1), *total] if columns else total)
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < len(columns) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join(line(row) for row in [headings, *rows])


def group_columns(by: Sequence[str]) -> list[str]:
    """The columns the response's groups carry, in response order (an account brings its
    provider)."""
    wanted = set(by) | ({"provider"} if "account" in by else set())
    return [name for name in DIMENSIONS if name in wanted]


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except connect.UsageError as exc:
        print(f"dlrhub stats: {exc}", file=sys.stderr)
        return 2
    except DlrhubError as exc:
        print(f"dlrhub stats: {exc.code.name}: {exc.details}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    until = args.until or datetime.now(UTC)
    async with connect.client_from(args) as client:
        response = await client.delivery_stats(
            args.since,
            until,
            group_by=args.by,
            basis=args.basis,
            provider=args.provider,
            account=args.account,
        )
    if args.json:
        print(render.json_text(response))
    else:
        print(table(response, group_columns(args.by)))
    return 0

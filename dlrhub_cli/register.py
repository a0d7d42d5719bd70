"""``dlrhub register``: register sent messages with statusd, from flags or a file.

From flags: ``dlrhub register --provider infobip --client-ref order-7 --recipient
+447700900123 MSG-1 MSG-2``. From a file (``--file sent.jsonl``, ``--file sent.csv``, ``-``
for standard input): JSON Lines (one object per line) or CSV with a header, with the
columns ``provider``, ``account``, ``message_id``, ``client_ref``, ``recipient``,
``submit_time`` (RFC 3339) and ``report_timeout`` (``90s``, ``30m``, ``24h``, ``3d``, or
seconds); the flags fill what a row leaves out. The client sends them in calls of 1000 and
retries a call statusd did not answer (registering is idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dlrhub.client import DlrhubError, registration
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_cli import connect

COLUMNS = (
    "provider",
    "account",
    "message_id",
    "client_ref",
    "recipient",
    "submit_time",
    "report_timeout",
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    register = commands.add_parser(
        "register",
        help="register sent messages with statusd, so they are known before their reports",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    register.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID", help="message ids")
    register.add_argument("--file", default="", help="JSON Lines or CSV file ('-': stdin)")
    group = register.add_argument_group("values (for a file: of the rows that leave them out)")
    group.add_argument("--provider", default="", help="provider name, e.g. infobip")
    group.add_argument("--account", default="", help="provider account (default: the default)")
    group.add_argument("--client-ref", default="", help="your own reference of the message")
    group.add_argument("--recipient", default="", help="recipient number in E.164")
    group.add_argument("--submit-time", type=_time, help="when sent, RFC 3339 (default: now)")
    group.add_argument(
        "--report-timeout",
        type=duration,
        help="NO_REPORT after this long without a final report: 90s, 30m, 24h, 3d "
        "(default: statusd's DLRHUB_REPORT_TIMEOUT_HOURS)",
    )
    register.add_argument("--json", action="store_true", help="print the answer as JSON")
    connect.add_flags(register, role="register")


def duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``3d`` or plain seconds as a timedelta."""
    found = _DURATION.match(str(text))
    if found is None or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration like 90s, 30m, 24h or 3d: {text!r}")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2) or "s"])


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return parsed


def _rows(args: argparse.Namespace) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, row)`` for every message to register: the ids given, then the file's rows."""
    for message_id in args.message_ids:
        yield f"MESSAGE_ID {message_id!r}", {"message_id": message_id}
    if not args.file:
        return
    text = _read(args.file)
    if args.file.endswith(".csv") or not text.lstrip().startswith("{"):  # else JSON Lines
        for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            unknown = set(row) - set(COLUMNS)
            if unknown:
                raise connect.UsageError(f"{args.file}: unknown columns {sorted(unknown)}")
            yield f"{args.file} line {number}", {k: v for k, v in row.items() if v}
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise connect.UsageError(f"{args.file} line {number}: not JSON: {exc}") from None
        if not isinstance(row, dict) or set(row) - set(COLUMNS):
            raise connect.UsageError(
                f"{args.file} line {number}: an object with keys among {', '.join(COLUMNS)}"
            )
        yield f"{args.file} line {number}", row


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise connect.UsageError(f"--file: cannot read {name}: {exc.strerror}") from None


def registrations(args: argparse.Namespace) -> list[pb.MessageRegistration]:
    """The registrations the flags and the file name; UsageError names a bad row."""
    found = []
    for where, row in _rows(args):
        try:
            submit = row.get("submit_time")
            timeout = row.get("report_timeout")
            made = registration(
                str(row.get("provider") or args.provider),
                str(row.get("message_id") or ""),
                account=str(row.get("account") or args.account),
                client_ref=str(row.get("client_ref") or args.client_ref),
                recipient=str(row.get("recipient") or args.recipient),
                submit_time=_time(submit) if submit else args.submit_time,
                report_timeout=duration(timeout) if timeout else args.report_timeout,
            )
        except argparse.ArgumentTypeError as exc:
            raise connect.UsageError(f"{where}: {exc}") from None
        if not made.provider or not made.message_id:
            raise connect.UsageError(f"{where}: needs a provider (--provider) and a message_id")
        found.append(made)
    if not found:
        raise connect.UsageError("nothing to register: give MESSAGE_IDs or --file")
    return found


def main(args: argparse.Namespace) -> int:
    try:
        wanted = registrations(args)
        answer = asyncio.run(_register(args, wanted))
    except connect.UsageError as exc:
        print(f"dlrhub register: {exc}", file=sys.stderr)
        return 2
    except DlrhubError as exc:
        print(f"dlrhub register: {exc.code.name}: {exc.details}", file=sys.stderr)
        return 1
    if args.json:
        outcomes = [
            status_pb.RegistrationOutcome.Name(outcome).removeprefix("REGISTRATION_OUTCOME_")
            for outcome in answer.outcomes
        ]
        print(
            json.dumps(
                {
                    "registered": answer.registered,
                    "duplicates": answer.duplicates,
                    "outcomes": [o.lower() for o in outcomes],
                }
            )
        )
    else:
        print(f"registered {answer.registered}, already registered {answer.duplicates}")
    return 0


async def _register(
    args: argparse.Namespace, wanted: list[pb.MessageRegistration]
) -> status_pb.RegisterMessagesResponse:
    async with connect.client_from(args) as client:
        return await client.register_messages(wanted)

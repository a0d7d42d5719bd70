"""``dlrhub status get|list|watch``: read message statuses from statusd (through the client)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from dlrhub.client import DlrhubClient, DlrhubError
from dlrhub_cli import connect, render
from dlrhub_common.status_names import BY_NAME

Action = Callable[[DlrhubClient, argparse.Namespace], Awaitable[int]]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="read message statuses from statusd")
    actions = status.add_subparsers(dest="status_command", required=True, metavar="ACTION")

    get = actions.add_parser(
        "get",
        help="one message's status",
        description="One message's status. A Sinch message is also found by the batch id and "
        "recipient it was sent with: status get sinch --batch-id B --recipient +447700900123",
    )
    get.add_argument("provider")
    get.add_argument("message_id", nargs="?", default="", help="(or --batch-id and --recipient)")
    get.add_argument("--batch-id", default="", help="sinch: the batch id")
    get.add_argument("--recipient", default="", help="sinch: the recipient, in any spelling")
    get.add_argument("--account", default="")
    get.add_argument("--full", action="store_true", help="include the whole history")
    get.add_argument("--json", action="store_true", help="print JSON")
    connect.add_flags(get)

    listing = actions.add_parser("list", help="messages passing a filter, oldest first seen first")
    _filter_flags(listing)
    listing.add_argument("--updated-since", type=_time, help="updated at or after (RFC 3339)")
    listing.add_argument("--updated-before", type=_time, help="updated before (RFC 3339)")
    listing.add_argument(
        "--awaiting-report",
        action="store_true",
        help="only registered messages still waiting for a final report",
    )
    listing.add_argument("--page-size", type=int, default=0, help="items per call (max 1000)")
    listing.add_argument("--limit", type=int, default=0, help="stop after this many (0: all)")
    listing.add_argument("--full", action="store_true", help="include histories (with --json)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    connect.add_flags(listing)

    watch = actions.add_parser("watch", help="follow changes as they arrive (Ctrl-C stops)")
    _filter_flags(watch)
    watch.add_argument("--resume-token", default="", help="continue after this token")
    watch.add_argument("--count", type=int, default=0, help="stop after this many changes")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    connect.add_flags(watch)


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filter (all given flags must match)")
    group.add_argument("--provider", default="")
    group.add_argument("--account", default="", help="(default: every account)")
    group.add_argument(
        "--status",
        action="append",
        default=[],
        type=str.lower,
        choices=sorted(BY_NAME),
        metavar="STATUS",
        help=f"current status, repeatable: {', '.join(BY_NAME)}",
    )
    group.add_argument("--recipient", default="", help="E.164 with '+'")
    group.add_argument("--client-ref", default="")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filter flags as the client's keyword arguments."""
    return {
        "provider": args.provider,
        "account": args.account,
        "statuses": args.status,
        "recipient": args.recipient,
        "client_ref": args.client_ref,
    }


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return parsed


def main(args: argparse.Namespace) -> int:
    action: Action = {"get": _get, "list": _list, "watch": _watch}[args.status_command]
    name = f"dlrhub status {args.status_command}"
    try:
        if args.status_command == "get":
            args.message_id = message_id_of(args)
        return asyncio.run(_run(action, args))
    except connect.UsageError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except DlrhubError as exc:
        print(f"{name}: {exc.code.name}: {exc.details}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run(action: Action, args: argparse.Namespace) -> int:
    async with connect.client_from(args) as client:  # inside the loop its channel uses
        return await action(client, args)


def message_id_of(args: argparse.Namespace) -> str:
    """The id to look up: as given, or formed from a Sinch batch id and recipient by the rule
    the gateway forms it with."""
    by_batch = bool(args.batch_id or args.recipient)
    if by_batch == bool(args.message_id):
        raise connect.UsageError("give a MESSAGE_ID, or --batch-id and --recipient")
    if not by_batch:
        return str(args.message_id)
    if args.provider != "sinch":
        raise connect.UsageError("--batch-id and --recipient find Sinch messages only")
    if not (args.batch_id and args.recipient):
        raise connect.UsageError("--batch-id and --recipient go together")
    from gateway.providers.sinch import message_key

    return message_key(args.batch_id, args.recipient)


async def _get(client: DlrhubClient, args: argparse.Namespace) -> int:
    found = await client.get(args.provider, args.message_id, account=args.account, full=args.full)
    if found is None:
        where = f" account {args.account!r}" if args.account else ""
        print(
            f"dlrhub status get: NOT_FOUND: no reports for message {args.message_id!r} "
            f"of provider {args.provider!r}{where}",
            file=sys.stderr,
        )
        return 1
    print(render.json_text(found) if args.json else render.describe(found))
    return 0


#: Table rows are laid out in batches of this many (a column only ever widens).
TABLE_BATCH = 200


async def _list(client: DlrhubClient, args: argparse.Namespace) -> int:
    shown, table, rows = 0, render.Table(), []
    async for status in client.list(
        **_filters(args),
        update_time_start=args.updated_since,
        update_time_end=args.updated_before,
        awaiting_report=args.awaiting_report,
        page_size=args.page_size,
        full=args.full,
    ):
        shown += 1
        if args.json:
            print(render.json_line(status), flush=True)
        else:
            rows.append(render.table_cells(status))
            if len(rows) == TABLE_BATCH:
                print("\n".join(table.lines(rows)), flush=True)
                rows = []
        if shown == args.limit:
            break
    if rows:
        print("\n".join(table.lines(rows)), flush=True)
    if not shown:
        print("no messages match", file=sys.stderr)  # stdout stays empty: zero JSON lines
    return 0


async def _watch(client: DlrhubClient, args: argparse.Namespace) -> int:
    watch = client.watch(
        **_filters(args),
        resume_token=args.resume_token,
        heartbeats=True,
    )
    shown = 0
    announced = False
    try:
        async for change in watch:
            if not change.HasField("message_status"):
                if not announced:
                    print(f"watching {client.target} (Ctrl-C stops)", file=sys.stderr, flush=True)
                    announced = True
                continue
            print(render.json_line(change) if args.json else render.change_line(change), flush=True)
            shown += 1
            if shown == args.count:
                break
    finally:
        if watch.resume_token:
            resume = f"--resume-token {watch.resume_token}{connect.target_flag(client.target)}"
            print(f"resume with: {resume}", file=sys.stderr)
    return 0

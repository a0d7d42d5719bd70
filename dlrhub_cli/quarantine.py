"""``dlrhub quarantine list|replay|delete``: authentic items that failed to parse, and their
second chance. ``replay`` parses each item again with today's provider code, ingests the
reports that now parse, and deletes exactly those items once statusd confirmed the commit;
``delete`` removes the items named by id (ones nothing will ever parse). All need a token
of statusd's role admin (one of DLRHUB_ADMIN_TOKENS), which may list, delete and ingest; the
gateway's ingest token and a read token are refused."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format

from dlrhub.client import bearer_metadata, open_channel
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub_cli import connect
from gateway.providers import PROVIDERS
from gateway.providers.base import InvalidItem

BATCH = 500
#: The provider column fits the longest provider name.
PROVIDER_WIDTH = max(len(name) for name in PROVIDERS)
#: Most ids one DeleteQuarantinedItems call may name.
DELETE_BATCH = 1000
Metadata = tuple[tuple[str, str], ...]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quarantine = commands.add_parser(
        "quarantine",
        help="list, replay or delete authentic items that failed to parse (needs role admin)",
        description="List, replay or delete authentic items that failed to parse. Each needs a "
        "token of statusd's role admin (--token or --token-file; one of DLRHUB_ADMIN_TOKENS; with "
        "the Helm chart, the admin-token key of the statusd auth Secret).",
    )
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    helps = {
        "list": "id, provider and reason of each item",
        "replay": "ingest the items that parse now, and delete exactly those",
        "delete": "delete the items with these ids (ones nothing will ever parse)",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text, description=text)
        if name == "delete":
            action.add_argument("ids", nargs="+", metavar="ID", help="item ids (see list)")
        if name == "replay":
            action.add_argument("--dry-run", action="store_true", help="parse only, change nothing")
        action.add_argument("--json", action="store_true", help="print JSON")
        connect.add_flags(action, role="admin")


async def items(
    stub: ingest_grpc.IngestServiceAsyncStub, metadata: Metadata
) -> AsyncIterator[pb.QuarantinedItem]:
    token = ""
    while True:
        page = await stub.ListQuarantinedItems(
            ingest_pb.ListQuarantinedItemsRequest(page_size=BATCH, page_token=token),
            timeout=30,
            metadata=metadata,
        )
        for item in page.quarantined_items:
            yield item
        token = page.next_page_token
        if not token:
            return


def reparse(item: pb.QuarantinedItem) -> pb.DeliveryReport:
    """The item parsed with today's code, stamped as the original request was."""
    provider_class = PROVIDERS.get(item.provider)
    if provider_class is None:
        raise InvalidItem(f"unknown provider {item.provider!r}")
    credentials = provider_class.settings_class.credentials_class()
    report = provider_class(item.account, credentials).parse_item(item.raw)
    report.provider = item.provider
    report.account = item.account
    report.received_time.CopyFrom(item.received_time)
    report.request_id = item.request_id
    report.auth_method = "quarantine_replay"
    return report


@dataclass
class ReplayResult:
    replayed: list[str] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)


async def replay(
    channel: grpc.aio.Channel, *, dry_run: bool, metadata: Metadata = ()
) -> ReplayResult:
    stub = ingest_grpc.IngestServiceStub(channel)
    result = ReplayResult()
    ready: list[tuple[str, pb.DeliveryReport]] = []
    async for item in items(stub, metadata):
        try:
            ready.append((item.id, reparse(item)))
        except InvalidItem as exc:
            result.failing[item.id] = str(exc)
    for start in range(0, len(ready), BATCH):
        chunk = ready[start : start + BATCH]
        if not dry_run:
            await stub.IngestReports(
                ingest_pb.IngestReportsRequest(reports=[report for _, report in chunk]),
                timeout=30,
                metadata=metadata,
            )
            await stub.DeleteQuarantinedItems(
                ingest_pb.DeleteQuarantinedItemsRequest(ids=[item_id for item_id, _ in chunk]),
                timeout=30,
                metadata=metadata,
            )
        result.replayed += [item_id for item_id, _ in chunk]
    return result


async def delete(channel: grpc.aio.Channel, ids: list[str], metadata: Metadata = ()) -> int:
    """Deletes the items with these ids (unknown ones are ignored); how many were deleted."""
    stub = ingest_grpc.IngestServiceStub(channel)
    deleted = 0
    for start in range(0, len(ids), DELETE_BATCH):
        answer = await stub.DeleteQuarantinedItems(
            ingest_pb.DeleteQuarantinedItemsRequest(ids=ids[start : start + DELETE_BATCH]),
            timeout=30,
            metadata=metadata,
        )
        deleted += answer.deleted
    return deleted


async def _list(channel: grpc.aio.Channel, as_json: bool, metadata: Metadata) -> int:
    shown = 0
    async for item in items(ingest_grpc.IngestServiceStub(channel), metadata):
        shown += 1
        if as_json:
            print(json_format.MessageToJson(item, indent=None), flush=True)
        else:
            print(f"{item.id:>8}  {item.provider:<{PROVIDER_WIDTH}}  {item.reason}", flush=True)
    if not shown:
        print("the quarantine is empty", file=sys.stderr)  # stdout stays empty: zero JSON lines
    return 0


async def _run(args: argparse.Namespace) -> int:
    metadata = bearer_metadata(connect.token_from(args))
    target = args.target or connect.default_target()
    async with open_channel(target, tls=connect.tls_from(args)) as channel:
        if args.action == "list":
            return await _list(channel, args.json, metadata)
        if args.action == "delete":
            deleted = await delete(channel, list(dict.fromkeys(args.ids)), metadata)
            print(json.dumps({"deleted": deleted}) if args.json else f"deleted {deleted} item(s)")
            return 0
        result = await replay(channel, dry_run=args.dry_run, metadata=metadata)
    verb = "would replay" if args.dry_run else "replayed"
    if args.json:
        print(json.dumps({"replayed": result.replayed, "still_failing": result.failing}))
    else:
        print(f"{verb} {len(result.replayed)} item(s); {len(result.failing)} still fail to parse")
        for item_id, reason in result.failing.items():
            print(f"  {item_id}: {reason}")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except connect.UsageError as exc:
        print(f"dlrhub quarantine: {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as exc:
        print(f"dlrhub quarantine: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1

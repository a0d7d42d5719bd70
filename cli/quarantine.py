"""``dlrhub quarantine list|replay``: authentic items that failed to parse, and their second
chance. ``replay`` parses each item again with today's provider code, ingests the reports
that now parse, and deletes exactly those items once statusd confirmed the commit."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from gateway.providers import PROVIDERS
from gateway.providers.base import InvalidItem

BATCH = 500


def items(stub: ingest_grpc.IngestServiceStub) -> Iterator[pb.QuarantinedItem]:
    token = ""
    while True:
        page = stub.ListQuarantinedItems(
            ingest_pb.ListQuarantinedItemsRequest(page_size=BATCH, page_token=token), timeout=30
        )
        yield from page.quarantined_items
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


def replay(channel: grpc.Channel, *, dry_run: bool) -> ReplayResult:
    stub = ingest_grpc.IngestServiceStub(channel)
    result = ReplayResult()
    ready: list[tuple[str, pb.DeliveryReport]] = []
    for item in items(stub):
        try:
            ready.append((item.id, reparse(item)))
        except InvalidItem as exc:
            result.failing[item.id] = str(exc)
    for start in range(0, len(ready), BATCH):
        chunk = ready[start : start + BATCH]
        if not dry_run:
            stub.IngestReports(
                ingest_pb.IngestReportsRequest(reports=[report for _, report in chunk]), timeout=30
            )
            stub.DeleteQuarantinedItems(
                ingest_pb.DeleteQuarantinedItemsRequest(ids=[item_id for item_id, _ in chunk]),
                timeout=30,
            )
        result.replayed += [item_id for item_id, _ in chunk]
    return result


def main(target: str, action: str, *, as_json: bool, dry_run: bool) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            if action == "list":
                stub = ingest_grpc.IngestServiceStub(channel)
                for item in items(stub):
                    if as_json:
                        print(json_format.MessageToJson(item, indent=None))
                    else:
                        print(f"{item.id:>8}  {item.provider:<10} {item.reason}")
                return 0
            result = replay(channel, dry_run=dry_run)
        except grpc.RpcError as exc:
            print(f"dlrhub quarantine: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    verb = "would replay" if dry_run else "replayed"
    if as_json:
        print(json.dumps({"replayed": result.replayed, "still_failing": result.failing}))
    else:
        print(f"{verb} {len(result.replayed)} item(s); {len(result.failing)} still fail to parse")
        for item_id, reason in result.failing.items():
            print(f"  {item_id}: {reason}")
    return 0

"""``dlrhub status ...``: read message statuses from statusd over gRPC."""

from __future__ import annotations

import sys

import grpc
from google.protobuf import json_format

from common.status_names import status_label
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc


def describe(status: pb.MessageStatus) -> str:
    """A few readable lines about one message."""
    latest = status.latest_report
    lines = [
        f"{status.provider}{'/' + status.account if status.account else ''} "
        f"{status.message_id}: {status_label(status.status).upper()}",
        f"  provider status  {latest.provider_status}"
        + (f" ({latest.provider_status_group})" if latest.provider_status_group else ""),
        f"  recipient        {status.recipient or '-'}",
        f"  reports          {status.report_count}"
        + ("  CONFLICT: different terminal statuses reported" if status.conflict else ""),
        f"  first seen       {status.first_seen_time.ToJsonString()}",
        f"  updated          {status.update_time.ToJsonString()}",
    ]
    if latest.error.code or latest.error.name:
        lines.append(
            f"  error            {latest.error.code} {latest.error.name} "
            f"{latest.error.description}".rstrip()
        )
    for report in status.history:
        when = report.event_time if report.HasField("event_time") else report.received_time
        lines.append(
            f"  - {when.ToJsonString()}  {status_label(report.status):<11} {report.provider_status}"
        )
    return "\n".join(lines)


def get(
    target: str, provider: str, message_id: str, *, account: str, full: bool, as_json: bool
) -> int:
    view = pb.MESSAGE_STATUS_VIEW_FULL if full else pb.MESSAGE_STATUS_VIEW_BASIC
    with grpc.insecure_channel(target) as channel:
        stub = status_grpc.StatusServiceStub(channel)
        try:
            response = stub.GetMessageStatus(
                status_pb.GetMessageStatusRequest(
                    provider=provider, message_id=message_id, account=account, view=view
                ),
                timeout=10,
            )
        except grpc.RpcError as exc:
            print(f"dlrhub status get: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    if as_json:
        print(json_format.MessageToJson(response.message_status))
    else:
        print(describe(response.message_status))
    return 0

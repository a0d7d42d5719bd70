"""How ``dlrhub status`` prints statuses: readable lines, table rows, JSON."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common.status_names import status_label

#: Table columns: heading and width (the last one is not padded).
COLUMNS = (
    ("PROVIDER", 10),
    ("ACCOUNT", 8),
    ("MESSAGE ID", 38),
    ("STATUS", 12),
    ("RECIPIENT", 16),
    ("REPORTS", 8),
    ("UPDATED", 0),
)


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
    if status.client_ref:
        lines.insert(3, f"  client ref       {status.client_ref}")
    if status.country:
        lines.insert(3 + bool(status.client_ref), f"  country          {status.country}")
    if status.HasField("register_time"):
        lines.append(f"  submitted        {status.submit_time.ToJsonString()}")
        lines.append(f"  report deadline  {status.report_deadline_time.ToJsonString()}")
    if latest.error.code or latest.error.name:
        lines.append(
            f"  error            {latest.error.code} {latest.error.name} "
            f"{latest.error.description}".rstrip()
        )
    for report in status.history:
        when = report.event_time if report.HasField("event_time") else report.received_time
        said = report.provider_status
        if report.HasField("registration"):
            said = "(registered)"
        elif report.status == pb.DELIVERY_STATUS_NO_REPORT:
            said = "(no report by the deadline)"
        lines.append(f"  - {when.ToJsonString()}  {status_label(report.status):<11} {said}")
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    padded = [
        cell.ljust(width - 1) if width else cell
        for cell, (_, width) in zip(cells, COLUMNS, strict=True)
    ]
    return " ".join(padded).rstrip()


def table_header() -> str:
    return _row([heading for heading, _ in COLUMNS])


def table_row(status: pb.MessageStatus) -> str:
    return _row(
        [
            status.provider,
            status.account or "-",
            status.message_id,
            status_label(status.status).upper(),
            status.recipient or "-",
            str(status.report_count),
            status.update_time.ToJsonString(),
        ]
    )


def change_line(change: status_pb.WatchMessageStatusesResponse) -> str:
    """One line per change: when, which message, the new report, the message's status."""
    report = change.report
    when = report.event_time if report.HasField("event_time") else report.received_time
    account = f"/{report.account}" if report.account else ""
    return (
        f"{when.ToJsonString()}  {report.provider}{account} {report.message_id}  "
        f"{status_label(report.status).upper()} ({report.provider_status})  "
        f"now {status_label(change.message_status.status).upper()}"
    )


def json_line(message: Message) -> str:
    """One compact line of proto3 JSON."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":"))


def json_text(message: Message) -> str:
    """Indented proto3 JSON."""
    return json_format.MessageToJson(message)

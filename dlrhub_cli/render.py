"""How ``dlrhub status`` prints statuses: readable lines, table rows, JSON."""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common.status_names import status_label

#: Table columns, each as wide as its longest cell or heading (the last one is not padded).
HEADINGS = ("PROVIDER", "ACCOUNT", "MESSAGE ID", "STATUS", "RECIPIENT", "REPORTS", "UPDATED")
#: No cell of a column is padded beyond this; a longer one pushes its row's later cells.
MAX_WIDTH = 64


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


def table_cells(status: pb.MessageStatus) -> list[str]:
    """One message's cells, in :data:`HEADINGS` order."""
    return [
        status.provider,
        status.account or "-",
        status.message_id,
        status_label(status.status).upper(),
        status.recipient or "-",
        str(status.report_count),
        status.update_time.ToJsonString(),
    ]


class Table:
    """Lines of a table whose columns fit their cells. Rows come in batches (a listing is
    streamed): the header goes out with the first batch, and a column only ever widens."""

    def __init__(self) -> None:
        self.widths = [len(heading) for heading in HEADINGS]
        self.started = False

    def lines(self, rows: list[list[str]]) -> list[str]:
        for cells in rows:
            self.widths = [
                max(width, min(len(cell), MAX_WIDTH))
                for width, cell in zip(self.widths, cells, strict=True)
            ]
        out = [] if self.started else [self._line(list(HEADINGS))]
        self.started = True
        return out + [self._line(cells) for cells in rows]

    def _line(self, cells: list[str]) -> str:
        last = len(cells) - 1
        padded = [
            cell if index == last else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, self.widths, strict=True))
        ]
        return "  ".join(padded).rstrip()


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

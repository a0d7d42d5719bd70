"""How ``dlrhub status`` prints statuses: readable lines, table rows, change lines, JSON."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_cli.render import (
    MAX_WIDTH,
    Table,
    change_line,
    describe,
    json_line,
    json_text,
    table_cells,
)

SENT_AT = Timestamp(seconds=1_772_359_200)  # 2026-03-01T10:00:00Z
DONE_AT = Timestamp(seconds=1_772_359_205)


def report(status: int, provider_status: str, when: Timestamp) -> pb.DeliveryReport:
    return pb.DeliveryReport(
        provider="infobip",
        account="eu",
        message_id="ib-1",
        status=status,  # type: ignore[arg-type]
        provider_status=provider_status,
        event_time=when,
    )


def message(conflict: bool = False) -> pb.MessageStatus:
    latest = report(pb.DELIVERY_STATUS_DELIVERED, "DELIVERED_TO_HANDSET", DONE_AT)
    latest.provider_status_group = "DELIVERED"
    latest.error.code = "0"
    latest.error.name = "NO_ERROR"
    return pb.MessageStatus(
        provider="infobip",
        account="eu",
        message_id="ib-1",
        status=pb.DELIVERY_STATUS_DELIVERED,
        recipient="+41793026727",
        report_count=2,
        conflict=conflict,
        first_seen_time=SENT_AT,
        update_time=DONE_AT,
        latest_report=latest,
        history=[report(pb.DELIVERY_STATUS_SENT, "PENDING_ENROUTE", SENT_AT), latest],
    )


def test_describe_lists_the_status_error_and_history() -> None:
    lines = describe(message()).splitlines()
    assert lines[0] == "infobip/eu ib-1: DELIVERED"
    assert lines[1] == "  provider status  DELIVERED_TO_HANDSET (DELIVERED)"
    assert lines[2] == "  recipient        +41793026727"
    assert lines[3] == "  reports          2"
    assert lines[4] == "  first seen       2026-03-01T10:00:00Z"
    assert lines[6] == "  error            0 NO_ERROR"
    assert lines[7:] == [
        "  - 2026-03-01T10:00:00Z  sent        PENDING_ENROUTE",
        "  - 2026-03-01T10:00:05Z  delivered   DELIVERED_TO_HANDSET",
    ]


def test_describe_shows_the_registration_and_its_timeout() -> None:
    registered = report(pb.DELIVERY_STATUS_ACCEPTED, "", SENT_AT)
    registered.registration.message_id = "ib-1"
    timed_out = report(pb.DELIVERY_STATUS_NO_REPORT, "", DONE_AT)
    status = pb.MessageStatus(
        provider="infobip",
        message_id="ib-1",
        status=pb.DELIVERY_STATUS_NO_REPORT,
        recipient="+447700900123",
        client_ref="order-7",
        country="GB",
        latest_report=timed_out,
        register_time=SENT_AT,
        submit_time=SENT_AT,
        report_deadline_time=DONE_AT,
        history=[registered, timed_out],
    )
    lines = describe(status).splitlines()
    assert lines[0] == "infobip ib-1: NO_REPORT"
    assert lines[2:5] == [
        "  recipient        +447700900123",
        "  client ref       order-7",
        "  country          GB",
    ]
    assert "  submitted        2026-03-01T10:00:00Z" in lines
    assert "  report deadline  2026-03-01T10:00:05Z" in lines
    assert lines[-2:] == [
        "  - 2026-03-01T10:00:00Z  accepted    (registered)",
        "  - 2026-03-01T10:00:05Z  no_report   (no report by the deadline)",
    ]


def test_describe_flags_a_conflict_and_shows_missing_fields() -> None:
    bare = pb.MessageStatus(provider="plivo", message_id="pl-1", report_count=3, conflict=True)
    text = describe(bare)
    assert text.splitlines()[0] == "plivo pl-1: UNSPECIFIED"
    assert "recipient        -" in text
    assert "CONFLICT: different terminal statuses reported" in text
    assert "error" not in text


def test_table_rows_line_up_under_the_header() -> None:
    header, row = Table().lines([table_cells(message())])
    assert header.split()[:3] == ["PROVIDER", "ACCOUNT", "MESSAGE"]
    assert row.split() == [
        "infobip",
        "eu",
        "ib-1",
        "DELIVERED",
        "+41793026727",
        "2",
        "2026-03-01T10:00:05Z",
    ]
    assert header.index("STATUS") == row.index("DELIVERED")
    assert table_cells(pb.MessageStatus(provider="plivo", message_id="x"))[1] == "-"


def columns_start(line: str, cells: list[str]) -> list[int]:
    starts, at = [], 0
    for cell in cells:
        at = line.index(cell, at)
        starts.append(at)
        at += len(cell)
    return starts


def test_columns_fit_long_provider_names_and_ids() -> None:
    long_one = pb.MessageStatus(
        provider="standard-webhooks",
        account="customer-with-a-long-name",
        message_id="01FC66621VHDBN119Z8PMV1QPQ:+447700900123-and-more-to-it",
        status=pb.DELIVERY_STATUS_UNDELIVERED,
        recipient="+447700900123",
        report_count=12,
        update_time=DONE_AT,
    )
    table = Table()
    cells = [table_cells(message()), table_cells(long_one)]
    header, *rows = table.lines(cells)
    starts = columns_start(rows[1], cells[1])
    assert columns_start(rows[0], cells[0]) == starts
    assert [header.index(heading) for heading in ("PROVIDER", "ACCOUNT", "MESSAGE ID")] == (
        starts[:3]
    )
    for row_cells in cells:  # every cell ends at least two spaces before the next column
        ends = [start + len(cell) for start, cell in zip(starts, row_cells, strict=True)]
        assert all(nxt - end >= 2 for end, nxt in zip(ends, starts[1:], strict=False))
    # later batches keep the widths (no second header) and only ever widen them
    (later,) = table.lines([table_cells(message())])
    assert columns_start(later, cells[0]) == starts


def test_an_overlong_cell_pushes_its_row_but_not_the_columns() -> None:
    huge = pb.MessageStatus(provider="p", message_id="m" * (MAX_WIDTH * 2), update_time=DONE_AT)
    header, plain, pushed = Table().lines([table_cells(message()), table_cells(huge)])
    assert header.index("STATUS") == plain.index("DELIVERED")
    assert header.index("STATUS") == MAX_WIDTH + plain.index("ib-1") + 2
    assert "m" * (MAX_WIDTH * 2) in pushed


def test_change_line_names_the_report_and_the_new_status() -> None:
    change = status_pb.WatchMessageStatusesResponse(
        message_status=message(),
        report=report(pb.DELIVERY_STATUS_SENT, "PENDING_ENROUTE", SENT_AT),
    )
    assert change_line(change) == (
        "2026-03-01T10:00:00Z  infobip/eu ib-1  SENT (PENDING_ENROUTE)  now DELIVERED"
    )


def test_json_forms_are_proto3_json() -> None:
    status = message()
    line = json_line(status)
    assert "\n" not in line
    assert json.loads(line)["status"] == "DELIVERY_STATUS_DELIVERED"
    assert json.loads(json_text(status)) == json.loads(line)
    assert "\n" in json_text(status)

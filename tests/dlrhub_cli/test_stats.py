"""``dlrhub stats``: its parsing and table, and the command against a running statusd process
that holds registrations and reports sent over gRPC."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client.parser import text_string_to_metric_families

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from dlrhub_cli import stats
from tests.helpers.processes import BIN, Stack

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_when_takes_durations_ago_and_times() -> None:
    assert stats.when("24h", NOW) == NOW - timedelta(hours=24)
    assert stats.when("7d", NOW) == NOW - timedelta(days=7)
    assert stats.when("90m", NOW) == NOW - timedelta(minutes=90)
    assert stats.when("2026-12-01T00:00:00Z") == datetime(2026, 12, 1, tzinfo=UTC)
    for bad in ("yesterday", "2026-12-01T00:00:00", "5y"):
        with pytest.raises(argparse.ArgumentTypeError):
            stats.when(bad)


def test_dimensions() -> None:
    assert stats.dimensions("provider, Country,error-code") == ["provider", "country", "error_code"]
    with pytest.raises(argparse.ArgumentTypeError, match="not a dimension"):
        stats.dimensions("provider,carrier")
    assert stats.group_columns(["status", "account"]) == ["provider", "account", "status"]


@pytest.mark.parametrize(
    ("micros", "text"),
    [(500, "500us"), (850_000, "850ms"), (12_300_000, "12.3s"), (245_000_000, "4m05s")],
)
def test_duration_text(micros: int, text: str) -> None:
    duration = Duration()
    duration.FromMicroseconds(micros)
    assert stats.duration_text(duration) == text
    duration.FromSeconds(2 * 3600 + 600)
    assert stats.duration_text(duration) == "2h10m"


def test_the_table_aligns_its_columns() -> None:
    group = status_pb.DeliveryStatsGroup(
        provider="infobip", country="GB", message_count=1200, delivered_count=3, final_count=4
    )
    group.delivery_rate = 0.75
    group.receipt_latency_p50.FromSeconds(3)
    group.latency_count = 4
    response = status_pb.GetDeliveryStatsResponse(
        groups=[group, status_pb.DeliveryStatsGroup(provider="plivo", message_count=2)],
        total=status_pb.DeliveryStatsGroup(message_count=1202),
    )
    lines = stats.table(response, ["provider", "country"]).splitlines()
    assert lines[0].split()[:4] == ["PROVIDER", "COUNTRY", "MESSAGES", "DELIVERED"]
    assert lines[1].split()[:6] == ["infobip", "GB", "1200", "3", "0", "4"]
    assert "75.0%" in lines[1]
    assert "3.0s" in lines[1]
    assert lines[2].split()[:3] == ["plivo", "-", "2"]
    assert lines[3].split()[:2] == ["TOTAL", "1202"]
    assert len({len(line) for line in lines[:2]}) == 1  # right-aligned numbers end together


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("stats")
    made = Stack(directory, {"DLRHUB_LOG_FORMAT": "text"})
    made.start_statusd()
    try:
        with grpc.insecure_channel(made.target) as channel:
            _fill(channel)
        yield made
    finally:
        made.stop()


def _fill(channel: grpc.Channel) -> None:
    """Registers four messages submitted ten minutes ago and reports three of them."""
    submitted = time.time_ns() // 1000 - 600_000_000
    registrations = []
    recipients = [
        ("infobip", "+447700900123"),
        ("infobip", "+447700900124"),
        ("plivo", "+4915112345678"),
        ("plivo", "+4915112345679"),
    ]
    for number, (provider, recipient) in enumerate(recipients):
        made = pb.MessageRegistration(
            provider=provider, message_id=f"s-{number}", recipient=recipient
        )
        made.submit_time.FromMicroseconds(submitted)
        registrations.append(made)
    status_grpc.StatusServiceStub(channel).RegisterMessages(
        status_pb.RegisterMessagesRequest(registrations=registrations), timeout=10
    )
    reports = []
    for number, status, seconds in [(0, 4, 2), (1, 5, 30), (2, 4, 90)]:
        report = pb.DeliveryReport(
            provider=registrations[number].provider,
            message_id=f"s-{number}",
            status=status,  # type: ignore[arg-type]
            provider_status="x",
        )
        report.event_time.FromMicroseconds(submitted + seconds * 1_000_000)
        reports.append(report)
    ingest_grpc.IngestServiceStub(channel).IngestReports(
        ingest_pb.IngestReportsRequest(reports=reports), timeout=10
    )


def run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    return subprocess.run(
        [str(BIN / "dlrhub"), "stats", "--target", stack.target, *args],
        env=env,
        cwd=Path(stack.env["DLRHUB_SQLITE_PATH"]).parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.e2e
def test_stats_table_against_statusd(stack: Stack) -> None:
    shown = run(stack, "--by", "provider,country", "--since", "1h")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "COUNTRY", "MESSAGES"]
    rows = [line.split() for line in lines[1:]]
    assert [row[:7] for row in rows] == [
        ["infobip", "GB", "2", "1", "0", "2", "50.0%"],
        ["plivo", "DE", "2", "1", "0", "1", "100.0%"],
        ["TOTAL", "4", "2", "0", "3", "66.7%", "0.0%"],
    ]
    assert rows[0][8:11] == ["2.0s", "30.0s", "30.0s"]  # p50, p90, p99 of 2 s and 30 s
    earlier = run(stack, "--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z")
    assert earlier.stdout.splitlines()[1].split()[0] == "0"


@pytest.mark.e2e
def test_stats_json_and_filters(stack: Stack) -> None:
    shown = run(stack, "--json", "--by", "status", "--provider", "plivo", "--basis", "first-seen")
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert found["total"]["messageCount"] == "2"
    assert [(g["status"], g["messageCount"]) for g in found["groups"]] == [
        ("DELIVERY_STATUS_ACCEPTED", "1"),
        ("DELIVERY_STATUS_DELIVERED", "1"),
    ]
    bad = run(stack, "--by", "carrier")
    assert bad.returncode == 2
    assert "not a dimension" in bad.stderr


@pytest.mark.e2e
def test_the_delivery_metrics_of_the_same_messages(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['DLRHUB_STATUSD_METRICS_PORT']}/metrics"
    wanted = {
        ("dlrhub_receipt_latency_by_country_seconds_count", (("country", "GB"),)): 2.0,
        ("dlrhub_receipt_latency_by_country_seconds_count", (("country", "DE"),)): 1.0,
        (
            "dlrhub_final_reports_total",
            (("country", ""), ("provider", "infobip"), ("status", "delivered")),
        ): 1.0,
    }
    deadline = time.monotonic() + 10
    while True:  # the latency is observed just after the commit, off the answer's path
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        if all(found.get(key) == value for key, value in wanted.items()):
            return
        assert time.monotonic() < deadline, {key: found.get(key) for key in wanted}
        time.sleep(0.2)

"""Register-on-send end to end, with statusd and the gateway as real processes: ``dlrhub
register`` registers messages with a 2 s report timeout; the one whose receipt comes stays
DELIVERED, the others turn NO_REPORT by statusd's sweeper, a late DELIVERED webhook still
wins, a message registered after its report keeps the report and gains the registration,
and statusd's counters move."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.e2e.test_metrics import scrape, value
from tests.helpers.processes import BIN, CREDENTIALS, INFOBIP_BASIC_AUTH, Stack
from tests.helpers.requests import basic_json_headers

pytestmark = pytest.mark.e2e

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
NO_REPORT = pb.DELIVERY_STATUS_NO_REPORT


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {**CREDENTIALS, "DLRHUB_REPORT_SWEEP_SECONDS": "0.2", "DLRHUB_LOG_FORMAT": "text"}


def dlrhub(
    stack: Stack, cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    return subprocess.run(
        [str(BIN / "dlrhub"), *args, "--target", stack.target],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def deliver(stack: Stack, message_id: str) -> None:
    """An Infobip DELIVERED webhook (no callbackData: the registration's reference stays)."""
    item = {
        "messageId": message_id,
        "to": "41793026727",
        "doneAt": "2026-03-01T10:00:00.000+0000",
        "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
    }
    headers = basic_json_headers(INFOBIP_BASIC_AUTH)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        answer = http.post(
            "/webhooks/infobip", content=json.dumps({"results": [item]}), headers=headers
        )
    assert answer.status_code == 200, answer.text


def get(stack: Stack, message_id: str) -> pb.MessageStatus:
    with grpc.insecure_channel(stack.target) as channel:
        request = status_pb.GetMessageStatusRequest(provider="infobip", message_id=message_id)
        return status_grpc.StatusServiceStub(channel).GetMessageStatus(request).message_status


def wait_for(stack: Stack, message_id: str, status: int, seconds: float = 20) -> pb.MessageStatus:
    deadline = time.monotonic() + seconds
    while True:
        found = get(stack, message_id)
        if found.status == status or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_register_time_out_and_a_late_receipt(stack: Stack, tmp_path: Path) -> None:
    metrics_url = f"http://127.0.0.1:{stack.env['DLRHUB_STATUSD_METRICS_PORT']}/metrics"
    before = scrape(metrics_url)
    sent = "\n".join(
        json.dumps({"message_id": f"e2e-{n}", "client_ref": f"order-{n}"}) for n in (1, 2, 3)
    )
    registered = dlrhub(
        stack,
        tmp_path,
        "register",
        "--provider",
        "infobip",
        "--recipient",
        "+447700900123",
        "--report-timeout",
        "2s",
        "--file",
        "-",
        "--json",
        stdin=sent + "\n",
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout) == {
        "registered": 3,
        "duplicates": 0,
        "outcomes": ["registered"] * 3,
    }
    waiting = get(stack, "e2e-2")
    assert (waiting.status, waiting.report_count, waiting.client_ref, waiting.country) == (
        pb.DELIVERY_STATUS_ACCEPTED,
        0,
        "order-2",
        "GB",
    )
    deliver(stack, "e2e-1")  # its receipt comes in time
    for message_id in ("e2e-2", "e2e-3"):
        assert wait_for(stack, message_id, NO_REPORT).status == NO_REPORT
    assert get(stack, "e2e-1").status == DELIVERED
    listed = dlrhub(stack, tmp_path, "status", "list", "--status", "no_report", "--json")
    assert [json.loads(line)["messageId"] for line in listed.stdout.splitlines()] == [
        "e2e-2",
        "e2e-3",
    ]
    deliver(stack, "e2e-2")  # late: still applied, and it wins
    late = get(stack, "e2e-2")
    assert (late.status, late.report_count, late.client_ref) == (DELIVERED, 1, "order-2")
    assert late.HasField("final_time")
    again = dlrhub(stack, tmp_path, "register", "--provider", "infobip", "e2e-1")
    assert again.returncode == 0, again.stderr
    assert "registered 0, already registered 1" in again.stdout
    after = scrape(metrics_url)
    moved = {
        ("dlrhub_registrations_total", "registered"): 3,
        ("dlrhub_registrations_total", "duplicate"): 1,
    }
    for (name, outcome), by in moved.items():
        labels = {"provider": "infobip", "outcome": outcome}
        assert value(after, name, **labels) - value(before, name, **labels) == by
    timeouts = "dlrhub_report_timeouts_total"
    assert (
        value(after, timeouts, provider="infobip") - value(before, timeouts, provider="infobip")
        == 2
    )
    latency = "dlrhub_receipt_latency_seconds_count"
    assert (
        value(after, latency, provider="infobip") - value(before, latency, provider="infobip") == 2
    )


def test_register_after_the_report(stack: Stack, tmp_path: Path) -> None:
    deliver(stack, "first-report")
    registered = dlrhub(
        stack,
        tmp_path,
        "register",
        "--provider",
        "infobip",
        "--client-ref",
        "order-9",
        "--submit-time",
        "2026-03-01T09:59:00Z",
        "first-report",
    )
    assert registered.returncode == 0, registered.stderr
    assert "registered 1, already registered 0" in registered.stdout
    found = get(stack, "first-report")
    assert (found.status, found.report_count, found.client_ref, found.recipient) == (
        DELIVERED,
        1,
        "order-9",
        "+41793026727",
    )
    assert found.submit_time.ToSeconds() == 1772359140  # 2026-03-01T09:59:00Z
    assert found.HasField("register_time")
    time.sleep(0.5)  # a sweep or two: a message with its receipt never times out
    assert get(stack, "first-report").status == DELIVERED

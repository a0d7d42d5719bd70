"""Both processes' /metrics, scraped from running processes: the names and labels operators
and the chart's alerts rely on exist, and the counters move with the traffic.

Covers statusd/metrics.py: every series statusd exports is scraped from its process here."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.helpers.processes import INFOBIP_BASIC_AUTH, Stack
from tests.helpers.requests import basic_json_headers

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: (metric, how much one round of ``send_traffic`` moves it, labels).
Move = tuple[str, float, dict[str, str]]

GATEWAY_MOVES: list[Move] = [
    ("dlrhub_webhook_requests_total", 1, {"provider": "infobip", "outcome": "ok"}),
    ("dlrhub_webhook_requests_total", 1, {"provider": "infobip", "outcome": "unauthorized"}),
    ("dlrhub_signature_failures_total", 1, {"provider": "infobip", "reason": "invalid"}),
    (
        "dlrhub_webhook_reports_total",
        1,
        {"provider": "infobip", "status": "delivered", "result": "stored"},
    ),
    (
        "dlrhub_webhook_reports_total",
        1,
        {"provider": "infobip", "status": "unspecified", "result": "quarantined"},
    ),
    ("dlrhub_dlr_latency_seconds_count", 1, {"provider": "infobip"}),
    ("dlrhub_webhook_request_duration_seconds_count", 2, {"provider": "infobip"}),
    ("dlrhub_ingest_call_duration_seconds_count", 1, {"code": "OK"}),
]
INGEST = {"grpc_type": "unary", "grpc_service": "dlrhub.v1.IngestService"}
STATUS = {"grpc_type": "unary", "grpc_service": "dlrhub.v1.StatusService"}
OK = {"grpc_code": "OK"}
STATUSD_MOVES: list[Move] = [
    ("grpc_server_started_total", 1, {**INGEST, "grpc_method": "IngestReports"}),
    ("grpc_server_handled_total", 1, {**INGEST, "grpc_method": "IngestReports", **OK}),
    ("grpc_server_handled_total", 1, {**STATUS, "grpc_method": "GetMessageStatus", **OK}),
    ("grpc_server_handling_seconds_count", 1, {**STATUS, "grpc_method": "GetMessageStatus"}),
    (
        "dlrhub_ingest_reports_total",
        1,
        {"provider": "infobip", "status": "delivered", "outcome": "stored"},
    ),
    ("dlrhub_quarantined_items_total", 1, {"provider": "infobip"}),
    (
        "dlrhub_final_reports_total",
        1,
        {"provider": "infobip", "country": "", "status": "delivered"},  # no recipient sent
    ),
    ("dlrhub_store_commit_seconds_count", 1, {"store": "sqlite"}),
    ("dlrhub_group_commit_reports_count", 1, {}),
    ("dlrhub_group_commit_calls_count", 1, {}),
]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def assert_moved(before: Samples, after: Samples, moves: list[Move]) -> None:
    for name, by, labels in moves:
        assert value(after, name, **labels) - value(before, name, **labels) == by, (name, labels)


def send_traffic(stack: Stack) -> None:
    """A batch with one good and one quarantined report, the same batch with a wrong
    password, and one GetMessageStatus call."""
    good = {
        "results": [
            {
                "messageId": "metrics-1",
                "doneAt": "2026-03-01T10:00:00.000+0000",
                "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
            },
            {"status": {"groupName": "DELIVERED"}},  # no messageId: quarantined
        ]
    }
    body = json.dumps(good)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        right = basic_json_headers(INFOBIP_BASIC_AUTH)
        assert http.post("/webhooks/infobip", content=body, headers=right).status_code == 200
        wrong = basic_json_headers("acme:guess")
        assert http.post("/webhooks/infobip", content=body, headers=wrong).status_code == 401
    with grpc.insecure_channel(stack.target) as channel:
        status_grpc.StatusServiceStub(channel).GetMessageStatus(
            status_pb.GetMessageStatusRequest(provider="infobip", message_id="metrics-1")
        )


def test_counters_move_with_traffic(stack: Stack) -> None:
    gateway_metrics = f"{stack.url}/metrics"
    statusd_metrics = f"http://127.0.0.1:{stack.env['DLRHUB_STATUSD_METRICS_PORT']}/metrics"
    before_gateway, before_statusd = scrape(gateway_metrics), scrape(statusd_metrics)
    send_traffic(stack)
    time.sleep(2.5)  # the quarantine gauge follows the store's health check
    gateway, statusd = scrape(gateway_metrics), scrape(statusd_metrics)

    assert_moved(before_gateway, gateway, GATEWAY_MOVES)
    assert value(gateway, "dlrhub_statusd_up") in (0.0, 1.0)
    assert_moved(before_statusd, statusd, STATUSD_MOVES)
    assert value(statusd, "dlrhub_store_up", store="sqlite") == 1.0
    assert value(statusd, "dlrhub_quarantine_items") == 1.0
    assert ("dlrhub_watchers", frozenset()) in statusd


def test_neither_process_exports_created_series(stack: Stack) -> None:
    """No ``_created`` series (prometheus_client's default doubles every counter's series)."""
    send_traffic(stack)
    statusd_metrics = f"http://127.0.0.1:{stack.env['DLRHUB_STATUSD_METRICS_PORT']}/metrics"
    for url in (f"{stack.url}/metrics", statusd_metrics):
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        assert "grpc_server_handled_total" in text or "dlrhub_webhook" in text, url
        assert "_created" not in text, url

"""Both processes' /metrics, scraped from running processes: the names and labels operators
and the chart's alerts rely on exist, and the counters move with the traffic."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from gateway.providers import signing
from tests.helpers.processes import Stack

pytestmark = pytest.mark.e2e

ENV = {"DLRHUB_INFOBIP_BASIC_AUTH": "acme:s3cret"}
BASIC = {
    "Authorization": signing.basic_authorization("acme:s3cret"),
    "Content-Type": "application/json",
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, ENV).start()
    try:
        yield running
    finally:
        running.stop()


def test_counters_move_with_traffic(stack: Stack) -> None:
    gateway_metrics = f"{stack.url}/metrics"
    statusd_metrics = f"http://127.0.0.1:{stack.env['DLRHUB_STATUSD_METRICS_PORT']}/metrics"
    before_gateway, before_statusd = scrape(gateway_metrics), scrape(statusd_metrics)
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
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        assert (
            http.post("/webhooks/infobip", content=json.dumps(good), headers=BASIC).status_code
            == 200
        )
        wrong = {**BASIC, "Authorization": signing.basic_authorization("acme:guess")}
        assert (
            http.post("/webhooks/infobip", content=json.dumps(good), headers=wrong).status_code
            == 401
        )
    with grpc.insecure_channel(stack.target) as channel:
        status_grpc.StatusServiceStub(channel).GetMessageStatus(
            status_pb.GetMessageStatusRequest(provider="infobip", message_id="metrics-1")
        )
    time.sleep(2.5)  # the quarantine gauge follows the store's health check
    gateway, statusd = scrape(gateway_metrics), scrape(statusd_metrics)

    def moved(samples: Samples, before: Samples, name: str, by: float = 1, **labels: str) -> None:
        assert value(samples, name, **labels) - value(before, name, **labels) == by, (name, labels)

    moved(
        gateway, before_gateway, "dlrhub_webhook_requests_total", provider="infobip", outcome="ok"
    )
    moved(
        gateway,
        before_gateway,
        "dlrhub_webhook_requests_total",
        provider="infobip",
        outcome="unauthorized",
    )
    moved(
        gateway,
        before_gateway,
        "dlrhub_signature_failures_total",
        provider="infobip",
        reason="invalid",
    )
    moved(
        gateway,
        before_gateway,
        "dlrhub_webhook_reports_total",
        provider="infobip",
        status="delivered",
        result="stored",
    )
    moved(
        gateway,
        before_gateway,
        "dlrhub_webhook_reports_total",
        provider="infobip",
        status="unspecified",
        result="quarantined",
    )
    moved(gateway, before_gateway, "dlrhub_dlr_latency_seconds_count", provider="infobip")
    moved(
        gateway,
        before_gateway,
        "dlrhub_webhook_request_duration_seconds_count",
        by=2,
        provider="infobip",
    )
    moved(gateway, before_gateway, "dlrhub_ingest_call_duration_seconds_count", code="OK")
    assert value(gateway, "dlrhub_statusd_up") in (0.0, 1.0)

    moved(
        statusd,
        before_statusd,
        "dlrhub_grpc_server_handled_total",
        method="IngestReports",
        code="OK",
    )
    moved(
        statusd,
        before_statusd,
        "dlrhub_grpc_server_handled_total",
        method="GetMessageStatus",
        code="OK",
    )
    moved(
        statusd,
        before_statusd,
        "dlrhub_grpc_server_handling_seconds_count",
        method="GetMessageStatus",
    )
    moved(
        statusd,
        before_statusd,
        "dlrhub_ingest_reports_total",
        provider="infobip",
        status="delivered",
        outcome="stored",
    )
    moved(statusd, before_statusd, "dlrhub_quarantined_items_total", provider="infobip")
    moved(statusd, before_statusd, "dlrhub_store_commit_seconds_count", store="sqlite")
    moved(statusd, before_statusd, "dlrhub_group_commit_reports_count")
    moved(statusd, before_statusd, "dlrhub_group_commit_calls_count")
    assert value(statusd, "dlrhub_store_up", store="sqlite") == 1.0
    assert value(statusd, "dlrhub_quarantine_items") == 1.0
    assert ("dlrhub_watchers", frozenset()) in statusd

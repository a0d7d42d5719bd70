"""Two statusd processes on one store behind one gateway: the gateway's calls take turns over
both replicas (DLRHUB_STATUSD_TARGET naming both, round robin), every report is stored once,
and with one replica stopped or killed the webhooks still succeed on the other.

SQLite lets two processes share one file in WAL mode (writers take turns on its lock, each
waiting up to DLRHUB_SQLITE_BUSY_TIMEOUT_MS), which is enough to show the balancing here; in
production, replicas share MongoDB."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.e2e.test_metrics import scrape, value
from tests.helpers.processes import (
    CREDENTIALS,
    PLIVO_AUTH_TOKEN,
    PUBLIC_URL,
    Service,
    free_port,
    http_ok,
    port_open,
)
from tests.helpers.requests import plivo_v3

pytestmark = pytest.mark.e2e

WEBHOOKS = 24
#: The Prometheus sample that counts a statusd's confirmed IngestReports calls.
INGESTED = (
    "grpc_server_handled_total",
    {
        "grpc_type": "unary",
        "grpc_service": "dlrhub.v1.IngestService",
        "grpc_method": "IngestReports",
        "grpc_code": "OK",
    },
)


class Replicas:
    """Two statusd processes on one SQLite file, and a gateway whose target names both."""

    def __init__(self, tmp_path: Path) -> None:
        store = {"DLRHUB_SQLITE_PATH": str(tmp_path / "dlrhub.sqlite3")}
        self.grpc_ports = [free_port(), free_port()]
        self.metrics_ports = [free_port(), free_port()]
        self.statusd = [
            Service(
                "dlrhub-statusd",
                {
                    **store,
                    "DLRHUB_STATUSD_PORT": str(grpc_port),
                    "DLRHUB_STATUSD_METRICS_PORT": str(metrics_port),
                    "DLRHUB_SHUTDOWN_GRACE_SECONDS": "5",
                },
                tmp_path / f"statusd-{index}.log",
            )
            for index, (grpc_port, metrics_port) in enumerate(
                zip(self.grpc_ports, self.metrics_ports, strict=True)
            )
        ]
        http_port = free_port()
        self.url = f"http://127.0.0.1:{http_port}"
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in self.grpc_ports)
        self.gateway = Service(
            "dlrhub-gateway",
            {**CREDENTIALS, "DLRHUB_GATEWAY_PORT": str(http_port), "DLRHUB_STATUSD_TARGET": target},
            tmp_path / "gateway.log",
        )

    def start(self) -> Replicas:
        for statusd, port in zip(self.statusd, self.grpc_ports, strict=True):
            statusd.start().wait_until(lambda port=port: port_open(port))
        self.gateway.start().wait_until(lambda: http_ok(self.url + "/readyz"))
        return self

    def stop(self) -> None:
        for service in (self.gateway, *self.statusd):
            if service.process is not None and service.process.poll() is None:
                service.stop()

    def ingested(self, index: int) -> float:
        """IngestReports calls replica ``index`` has confirmed."""
        name, labels = INGESTED
        return value(
            scrape(f"http://127.0.0.1:{self.metrics_ports[index]}/metrics"), name, **labels
        )


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    running = Replicas(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


def send_signed(url: str, prefix: str) -> int:
    """Sends WEBHOOKS signed Plivo callbacks one after another (each its own IngestReports
    call); a 503 is retried as a provider would. Returns how many 503s there were."""
    unavailable = 0
    with httpx.Client(base_url=url, timeout=15) as http:
        for n in range(WEBHOOKS):
            form = {"MessageUUID": f"{prefix}-{n}", "Status": "delivered", "To": "14155551234"}
            for attempt in range(3):
                signed = plivo_v3(
                    PUBLIC_URL + "/webhooks/plivo",
                    form,
                    PLIVO_AUTH_TOKEN,
                    f"{prefix}-{n}-{attempt}",
                )
                response = http.post("/webhooks/plivo", **signed)  # type: ignore[arg-type]
                if response.status_code != 503:
                    break
                unavailable += 1
                time.sleep(0.2)
            assert response.status_code == 200, response.text
    return unavailable


def report_counts(port: int, prefix: str) -> list[int]:
    """How many reports statusd holds for each message ``send_signed`` sent."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = status_grpc.StatusServiceStub(channel)
        return [
            stub.GetMessageStatus(
                status_pb.GetMessageStatusRequest(provider="plivo", message_id=f"{prefix}-{n}"),
                timeout=5,
            ).message_status.report_count
            for n in range(WEBHOOKS)
        ]


def test_calls_reach_both_replicas_and_each_report_is_stored_once(replicas: Replicas) -> None:
    assert send_signed(replicas.url, "both") == 0
    calls = [replicas.ingested(0), replicas.ingested(1)]
    assert all(count > 0 for count in calls), calls
    assert sum(calls) == WEBHOOKS
    # Either replica reads what the other stored: one store.
    assert report_counts(replicas.grpc_ports[0], "both") == [1] * WEBHOOKS
    assert report_counts(replicas.grpc_ports[1], "both") == [1] * WEBHOOKS


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_one_replica_gone_the_other_takes_every_call(replicas: Replicas, signum: int) -> None:
    replicas.statusd[0].stop(signum)
    before = replicas.ingested(1)
    unavailable = send_signed(replicas.url, "one")
    assert unavailable <= 1  # at most the call that was on its way to the stopped one
    assert replicas.ingested(1) - before == WEBHOOKS
    assert report_counts(replicas.grpc_ports[1], "one") == [1] * WEBHOOKS

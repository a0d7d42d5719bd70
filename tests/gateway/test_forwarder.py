"""The gateway's channel to statusd (gateway/forwarder.py), end to end over real HTTP and real
gRPC: statusd away is 503 and not ready, and the same request succeeds once it is back;
statusd with ingest tokens and mutual TLS: the gateway with its token and client certificate
gets reports stored, and without the right token gets 503 and stores nothing; a target naming
two statusd: calls take turns over both, and skip one whose IngestService is not SERVING.
Coalescing of concurrent calls is tested in test_coalescer.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

from gateway.auth import basic
from gateway.forwarder import INGEST_SERVICE
from statusd.server import Statusd
from statusd.storage import StoreUnavailable
from statusd.storage.base import MessageFilter
from statusd.storage.sqlite import SqliteStore
from tests.gateway.conftest import ENV, PUBLIC_URL
from tests.gateway.test_intake import infobip_body
from tests.helpers.certs import CertificateAuthority
from tests.helpers.rpc import health
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

BASIC = {"Authorization": basic.authorization("infobip:pw")}
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("token", "expected", "stored"),
    [("gateway-secret", 200, 1), (None, 503, 0), ("reader-secret", 503, 0), ("guess", 503, 0)],
)
async def test_gateway_token_and_mutual_tls(
    tmp_path: Path, token: str | None, expected: int, stored: int
) -> None:
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("statusd", server=True)
    gateway_cert = ca.issue("gateway", server=False)
    settings = statusd_settings(
        tmp_path,
        ingest_tokens="gateway-secret",
        read_tokens="reader-secret",
        tls_cert=server.cert.decode(),
        tls_key=server.key.decode(),
        tls_client_ca=ca.pem.decode(),
    )
    gateway_settings: dict[str, object] = {
        "public_url": PUBLIC_URL,
        "statusd_tls_ca": ca.pem.decode(),
        "statusd_tls_client_cert": gateway_cert.cert.decode(),
        "statusd_tls_client_key": gateway_cert.key.decode(),
        "ingest_deadline_seconds": 2.0,
    }
    if token is not None:
        gateway_settings["gateway_ingest_token"] = token
    async with (
        running_statusd(settings) as daemon,
        running_gateway(ENV, f"127.0.0.1:{daemon.port}", **gateway_settings) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        assert (await http.get("/readyz")).status_code == 200  # health needs no token
        response = await http.post(
            "/webhooks/infobip",
            content=infobip_body("tok-1"),
            headers={**BASIC, "Content-Type": "application/json"},
        )
        assert response.status_code == expected, response.text
        page = await daemon.store.list_messages(MessageFilter(), after=None, limit=10)
        assert len(page.items) == stored
        if expected == 503:
            assert response.headers["Retry-After"]


async def test_statusd_down_is_503_then_the_same_request_succeeds(tmp_path: Path) -> None:
    settings = statusd_settings(tmp_path)
    async with running_statusd(settings) as first:
        port = first.port
    fixed = statusd_settings(tmp_path, statusd_port=port)
    body = infobip_body("retry-1")
    async with (
        running_gateway(ENV, f"127.0.0.1:{port}", ingest_deadline_seconds=1.0) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        headers = {"Content-Type": "application/json", **BASIC}
        down = await http.post("/webhooks/infobip", content=body, headers=headers)
        assert down.status_code == 503
        assert down.headers["Retry-After"]
        assert down.json()["error"] == "unavailable"
        assert (await http.get("/readyz")).status_code == 503
        async with running_statusd(fixed) as back:
            for _ in range(50):  # a provider retries; the channel reconnects
                response = await http.post("/webhooks/infobip", content=body, headers=headers)
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200
            assert response.json()["stored"] == 1
            assert (await http.get("/readyz")).status_code == 200
            page = await back.store.list_messages(MessageFilter(), after=None, limit=5)
            assert [item.message_id for item in page.items] == ["retry-1"]


class UnwellStore(SqliteStore):
    """Commits as usual, but its health check fails while ``unwell`` is set."""

    unwell = False

    async def ping(self) -> None:
        if self.unwell:
            raise StoreUnavailable("unwell on purpose")
        await super().ping()


async def stored(daemon: Statusd) -> set[str]:
    page = await daemon.store.list_messages(MessageFilter(), after=None, limit=1000)
    return {item.message_id for item in page.items}


async def post_each(http: httpx.AsyncClient, ids: list[str]) -> None:
    headers = {"Content-Type": "application/json", **BASIC}
    for message_id in ids:  # one by one: each webhook is its own IngestReports call
        response = await http.post(
            "/webhooks/infobip", content=infobip_body(message_id), headers=headers
        )
        assert response.status_code == 200, response.text


async def test_calls_take_turns_over_replicas_and_skip_one_not_serving(tmp_path: Path) -> None:
    first_path, second_path = tmp_path / "first", tmp_path / "second"
    first_path.mkdir()
    second_path.mkdir()
    unwell = UnwellStore(second_path / "statusd.sqlite3")
    async with (
        running_statusd(statusd_settings(first_path)) as first,
        running_statusd(statusd_settings(second_path), store=unwell) as second,
        running_gateway(ENV, f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}") as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        turns = [f"turn-{n}" for n in range(12)]
        await post_each(http, turns)
        on_first, on_second = await stored(first), await stored(second)
        assert on_first, on_second  # both replicas took calls
        assert on_second, on_first
        assert on_first | on_second == set(turns)
        assert not on_first & on_second  # each report went to one of them, once

        unwell.unwell = True  # statusd's health loop turns its IngestService NOT_SERVING
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            for _ in range(100):
                if await health(channel, INGEST_SERVICE) != SERVING:
                    break
                await asyncio.sleep(0.05)
        skipped = [f"skip-{n}" for n in range(8)]
        await post_each(http, skipped)
        assert await stored(second) == on_second
        assert await stored(first) == on_first | set(skipped)

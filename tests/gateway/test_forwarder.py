"""The gateway's channel to statusd (gateway/forwarder.py), end to end over real HTTP and real
gRPC: statusd away is 503 and not ready, and the same request succeeds once it is back;
statusd with ingest tokens and mutual TLS: the gateway with its token and client certificate
gets reports stored, and without the right token gets 503 and stores nothing. Coalescing of
concurrent calls is tested in test_coalescer.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.auth import basic
from statusd.storage.base import MessageFilter
from tests.gateway.conftest import ENV, PUBLIC_URL
from tests.gateway.test_intake import infobip_body
from tests.helpers.certs import CertificateAuthority
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

BASIC = {"Authorization": basic.authorization("infobip:pw")}


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

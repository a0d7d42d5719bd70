"""The gateway's credentials towards statusd, end to end over real HTTP and real gRPC:
statusd with ingest tokens and mutual TLS; the gateway with its token and client
certificate gets reports stored, and without the right token gets 503 and stores nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.providers import signing
from statusd.storage.base import MessageFilter
from tests.gateway.conftest import ENV, PUBLIC_URL
from tests.gateway.test_routes import infobip_body
from tests.helpers.certs import CertificateAuthority
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

BASIC = {"Authorization": signing.basic_authorization("infobip:pw")}


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

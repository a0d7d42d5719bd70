"""Limits and protections over real HTTP: rate limits with Retry-After, the failed-auth limit,
headers, items per request, nesting depth, slow clients, and Plivo nonce replays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.providers import signing
from gateway.providers.plivo import sign_v2, sign_v3
from tests.gateway.conftest import ENV, PUBLIC_URL, Stack
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

BASIC = {
    "Authorization": signing.basic_authorization("infobip:pw"),
    "Content-Type": "application/json",
}
ONE = json.dumps(
    {
        "results": [
            {
                "messageId": "m-1",
                "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
            }
        ]
    }
)

StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    @asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[Stack]:
        async with (
            running_statusd(statusd_settings(tmp_path)) as daemon,
            running_gateway(
                ENV, f"127.0.0.1:{daemon.port}", public_url=PUBLIC_URL, **settings
            ) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
        ):
            yield Stack(daemon, gateway, http)

    return make


async def test_per_ip_rate_limit_answers_429_with_retry_after(make_stack: StackFactory) -> None:
    async with make_stack(rate_limit_per_ip=1, rate_limit_burst_seconds=3) as stack:
        codes = [
            (await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        limited = await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        assert limited.json()["error"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1


async def test_trusted_proxy_forwarded_for_names_the_client(make_stack: StackFactory) -> None:
    async with make_stack(
        rate_limit_per_ip=1, rate_limit_burst_seconds=1, trusted_proxies=("127.0.0.1",)
    ) as stack:
        for client in ("198.51.100.1", "198.51.100.2"):
            headers = {**BASIC, "X-Forwarded-For": client}
            assert (
                await stack.http.post("/webhooks/infobip", content=ONE, headers=headers)
            ).status_code == 200
        again = {**BASIC, "X-Forwarded-For": "198.51.100.1"}
        assert (
            await stack.http.post("/webhooks/infobip", content=ONE, headers=again)
        ).status_code == 429


async def test_per_account_rate_limit(make_stack: StackFactory) -> None:
    async with make_stack(rate_limit_per_account=1, rate_limit_burst_seconds=1) as stack:
        assert (
            await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        ).status_code == 200
        assert (
            await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        ).status_code == 429


async def test_clients_failing_authentication_are_slowed_down(make_stack: StackFactory) -> None:
    async with make_stack(auth_failure_limit_per_minute=3) as stack:
        wrong = {**BASIC, "Authorization": signing.basic_authorization("infobip:guess")}
        codes = [
            (await stack.http.post("/webhooks/infobip", content=ONE, headers=wrong)).status_code
            for _ in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
        # Even correct credentials wait now: the client is blocked, not the credential.
        assert (
            await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        ).status_code == 429
        assert await stack.stored_messages() == 0


async def test_too_many_headers_get_431(make_stack: StackFactory) -> None:
    async with make_stack(max_headers=20) as stack:
        headers = {**BASIC, **{f"X-Extra-{index}": "x" for index in range(30)}}
        response = await stack.http.post("/webhooks/infobip", content=ONE, headers=headers)
        assert response.status_code == 431
        assert response.json()["error"] == "headers_too_large"


async def test_huge_header_is_refused(make_stack: StackFactory) -> None:
    async with make_stack() as stack:
        response = await stack.http.post(
            "/webhooks/infobip", content=ONE, headers={**BASIC, "X-Big": "x" * 20_000}
        )
        assert 400 <= response.status_code < 500


async def test_items_per_request_limit(make_stack: StackFactory) -> None:
    async with make_stack(max_items_per_request=3) as stack:
        item = json.loads(ONE)["results"][0]
        body = json.dumps({"results": [{**item, "messageId": f"m-{index}"} for index in range(4)]})
        response = await stack.http.post("/webhooks/infobip", content=body, headers=BASIC)
        assert response.status_code == 413
        assert "3 reports" in response.json()["reason"]
        assert await stack.stored_messages() == 0


async def test_deep_nesting_is_a_400(make_stack: StackFactory) -> None:
    async with make_stack() as stack:
        for depth in (40, 5000):
            body = '{"results": [' + "[" * depth + "]" * depth + "]}"
            response = await stack.http.post("/webhooks/infobip", content=body, headers=BASIC)
            assert response.status_code == 400
            assert "nested deeper" in response.json()["reason"]


async def test_long_message_ids_are_quarantined(make_stack: StackFactory) -> None:
    async with make_stack() as stack:
        item = json.loads(ONE)["results"][0]
        body = json.dumps({"results": [{**item, "messageId": "x" * 129}]})
        response = await stack.http.post("/webhooks/infobip", content=body, headers=BASIC)
        assert response.json()["quarantined"] == 1
        assert await stack.stored_messages() == 0


async def test_slow_client_is_cut_off(make_stack: StackFactory) -> None:
    async with make_stack(request_timeout_seconds=0.5) as stack:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
        writer.write(b"POST /webhooks/infobip HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # until the server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"connection: close" in answer
        assert b"request_timeout" in answer


def plivo(form: dict[str, str], nonce: str) -> dict[str, Any]:
    signature = sign_v3(
        "POST", PUBLIC_URL + "/webhooks/plivo", tuple(form.items()), nonce, "plivo-token"
    )
    return {
        "content": urlencode(form),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": signature,
            "X-Plivo-Signature-V3-Nonce": nonce,
        },
    }


def plivo_v2(form: dict[str, str], nonce: str) -> dict[str, Any]:
    """A V2-signed callback: the signature covers the URL and the nonce, not the parameters."""
    return {
        "content": urlencode(form),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V2": sign_v2(PUBLIC_URL + "/webhooks/plivo", nonce, "plivo-token"),
            "X-Plivo-Signature-V2-Nonce": nonce,
        },
    }


async def test_plivo_nonce_on_another_request_is_refused_after_acceptance(
    make_stack: StackFactory,
) -> None:
    async with make_stack() as stack:
        form = {"MessageUUID": "p-1", "Status": "delivered", "ErrorCode": ""}
        accepted = await stack.http.post("/webhooks/plivo", **plivo_v2(form, "nonce-1"))
        assert accepted.json()["stored"] == 1
        # The captured V2 signature still verifies with other parameters: the nonce refuses it.
        forged = {"MessageUUID": "p-1", "Status": "failed", "ErrorCode": "200"}
        replayed = await stack.http.post("/webhooks/plivo", **plivo_v2(forged, "nonce-1"))
        assert replayed.status_code == 401
        assert "already accepted on another request" in replayed.json()["reason"]
        text = (await stack.http.get("/metrics")).text
        assert 'dlrhub_signature_failures_total{provider="plivo",reason="replayed"}' in text
        status = await stack.statusd.store.get(pb.MessageKey(provider="plivo", message_id="p-1"))
        assert status is not None
        assert status.report_count == 1
        assert status.status == pb.DELIVERY_STATUS_DELIVERED
        fresh = plivo(form, "nonce-2")  # a genuine resend with a new nonce: a duplicate
        assert (await stack.http.post("/webhooks/plivo", **fresh)).json()["duplicates"] == 1


async def test_the_accepted_request_itself_may_come_again(make_stack: StackFactory) -> None:
    """A provider whose 200 was lost resends the same signed request: a duplicate, not 401."""
    replays = REGISTRY.get_sample_value(
        "dlrhub_signature_failures_total", {"provider": "plivo", "reason": "replayed"}
    )
    async with make_stack() as stack:
        request = plivo({"MessageUUID": "p-3", "Status": "sent", "ErrorCode": ""}, "nonce-3")
        assert (await stack.http.post("/webhooks/plivo", **request)).json()["stored"] == 1
        for _ in range(3):
            again = await stack.http.post("/webhooks/plivo", **request)
            assert again.status_code == 200
            assert again.json()["duplicates"] == 1
    after = REGISTRY.get_sample_value(
        "dlrhub_signature_failures_total", {"provider": "plivo", "reason": "replayed"}
    )
    assert after == replays  # the gateway serves /metrics from this process's registry


async def test_a_retry_after_503_with_the_same_nonce_goes_through(tmp_path: Path) -> None:
    async with running_statusd(statusd_settings(tmp_path)) as first:
        port = first.port
    request = plivo({"MessageUUID": "p-2", "Status": "sent", "ErrorCode": ""}, "nonce-9")
    async with (
        running_gateway(
            ENV, f"127.0.0.1:{port}", public_url=PUBLIC_URL, ingest_deadline_seconds=1
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        assert (await http.post("/webhooks/plivo", **request)).status_code == 503
        async with running_statusd(statusd_settings(tmp_path, statusd_port=port)):
            for _ in range(50):
                response = await http.post("/webhooks/plivo", **request)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200

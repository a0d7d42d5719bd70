"""The guard (gateway/guard.py): its nonce cache and request digest, the replay and items
checks on a parsed request, and, over real HTTP, rate limits with Retry-After, the
failed-authentication limit (which never refuses a genuine request), the per-account limit
(which forgeries and unknown accounts never touch), the header and items limits, and Plivo
nonce replays. The token
buckets and client addresses themselves are tested in test_ratelimit.py."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import load
from gateway.auth import basic
from gateway.errors import PayloadTooLarge, Unauthenticated
from gateway.guard import Guard, NonceCache, digest
from gateway.providers import Parsed
from gateway.providers.base import build_request
from gateway.settings import GatewaySettings
from tests.gateway.conftest import ENV, PUBLIC_URL, StackFactory
from tests.gateway.test_intake import infobip_body, plivo_post
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

BASIC = {
    "Authorization": basic.authorization("infobip:pw"),
    "Content-Type": "application/json",
}
ONE = infobip_body("m-1")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembered_until_the_ttl() -> None:
    clock = Clock()
    cache = NonceCache(ttl=10, max_size=100, clock=clock)
    assert cache.seen("n1") is None
    cache.remember("n1", b"d1")
    assert cache.seen("n1") == b"d1"
    clock.now = 9.9
    assert cache.seen("n1") == b"d1"
    clock.now = 10.1
    assert cache.seen("n1") is None


def test_bounded_oldest_dropped_first() -> None:
    cache = NonceCache(ttl=1000, max_size=3, clock=Clock())
    for nonce in ("a", "b", "c", "d"):
        cache.remember(nonce, nonce.encode())
    assert len(cache) == 3
    assert cache.seen("a") is None
    assert cache.seen("d") == b"d"


def test_the_digest_covers_method_url_and_body() -> None:
    def of(method: str, url: str, body: bytes) -> bytes:
        return digest(build_request(method, url, [], body))

    same = of("POST", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    assert same == of("POST", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    assert same != of("POST", "https://x.example/webhooks/plivo?a=2", b"Status=sent")
    assert same != of("POST", "https://x.example/webhooks/plivo?a=1", b"Status=delivered")
    assert same != of("GET", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    # a path Sanic decoded into a lone surrogate is hashed, not an encoding error
    assert len(of("POST", "https://x.example/webhooks/\udcff", b"")) == 32


def guard(**settings: Any) -> Guard:
    return Guard(load(GatewaySettings, **settings))


def nonce_request(body: bytes, *nonces: str) -> tuple[Parsed, Any]:
    request = build_request("POST", "https://x.example/webhooks/plivo", [], body)
    keys = tuple(f"plivo//{nonce}" for nonce in nonces or ("n-1",))
    return Parsed(reports=[pb.DeliveryReport()], replay_keys=keys), request


def test_a_nonce_is_recorded_before_forwarding_and_refused_on_another_request() -> None:
    checks = guard()
    parsed, request = nonce_request(b"Status=sent")
    checks.check_parsed(parsed, request)  # recorded now, before statusd has answered
    checks.check_parsed(parsed, request)  # the same request may come again (a 503, a lost 200)
    other, forged = nonce_request(b"Status=failed")
    with pytest.raises(Unauthenticated) as refused:
        checks.check_parsed(other, forged)
    assert refused.value.label == "replayed"
    fresh, request = nonce_request(b"Status=failed", "n-2")
    checks.check_parsed(fresh, request)


def test_every_nonce_a_request_carries_is_recorded() -> None:
    checks = guard()
    checks.check_parsed(*nonce_request(b"Status=undelivered", "v3-nonce", "v2-nonce"))
    stripped = nonce_request(b"Status=delivered", "v2-nonce")  # V3 headers gone, form rewritten
    with pytest.raises(Unauthenticated, match="already accepted"):
        checks.check_parsed(*stripped)


def test_a_request_refused_for_its_items_records_no_nonce() -> None:
    checks = guard(max_items_per_request=1)
    parsed, request = nonce_request(b"Status=sent")
    parsed.reports.append(pb.DeliveryReport())
    with pytest.raises(PayloadTooLarge):
        checks.check_parsed(parsed, request)
    assert len(checks.nonces) == 0


def test_a_zero_ttl_remembers_no_nonce() -> None:
    checks = guard(nonce_ttl_seconds=0)
    parsed, request = nonce_request(b"Status=sent")
    checks.check_parsed(parsed, request)
    other, forged = nonce_request(b"Status=failed")
    checks.check_parsed(other, forged)
    assert len(checks.nonces) == 0


def test_too_many_items_are_refused() -> None:
    checks = guard(max_items_per_request=3)
    request = build_request("POST", "https://x.example/webhooks/infobip", [], b"")
    three = Parsed(reports=[pb.DeliveryReport()] * 2, quarantined=[pb.QuarantinedItem()])
    checks.check_parsed(three, request)
    four = Parsed(reports=[pb.DeliveryReport()] * 2, quarantined=[pb.QuarantinedItem()] * 2)
    with pytest.raises(PayloadTooLarge, match="more than 3 reports"):
        checks.check_parsed(four, request)


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


async def test_a_genuine_request_passes_however_many_forgeries_share_its_address(
    make_stack: StackFactory,
) -> None:
    """Behind an ingress without trusted proxies every request has the ingress's address:
    forgeries from it are throttled, genuine requests from it never are."""
    failures = {"provider": "infobip", "reason": "invalid"}
    before = REGISTRY.get_sample_value("dlrhub_signature_failures_total", failures) or 0
    async with make_stack() as stack:  # the default limit: 60 failures a minute
        wrong = {**BASIC, "Authorization": basic.authorization("infobip:guess")}
        codes = [
            (await stack.http.post("/webhooks/infobip", content=ONE, headers=wrong)).status_code
            for _ in range(62)
        ]
        assert codes == [401] * 60 + [429] * 2
        limited = await stack.http.post("/webhooks/infobip", content=ONE, headers=wrong)
        assert int(limited.headers["Retry-After"]) >= 1
        assert "credentials do not match" in limited.json()["reason"]
        for index in range(3):
            genuine = infobip_body(f"g-{index}")
            response = await stack.http.post("/webhooks/infobip", content=genuine, headers=BASIC)
            assert response.status_code == 200
        assert await stack.stored_messages() == 3
    after = REGISTRY.get_sample_value("dlrhub_signature_failures_total", failures)
    assert after == before + 63  # failures answered 429 are counted as failures too


async def test_forgeries_do_not_spend_an_accounts_rate_limit(make_stack: StackFactory) -> None:
    async with make_stack(rate_limit_per_account=1, rate_limit_burst_seconds=1) as stack:
        wrong = {**BASIC, "Authorization": basic.authorization("infobip:guess")}
        for _ in range(10):
            forged = await stack.http.post("/webhooks/infobip", content=ONE, headers=wrong)
            assert forged.status_code == 401
        first = await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        assert first.status_code == 200
        # the limit still holds for authenticated requests
        second = await stack.http.post("/webhooks/infobip", content=ONE, headers=BASIC)
        assert second.status_code == 429
        assert "infobip account" in second.json()["reason"]


async def test_unknown_providers_and_accounts_allocate_no_limiter_state(
    make_stack: StackFactory,
) -> None:
    settings = {"rate_limit_per_account": 100, "auth_failure_limit_per_minute": 10}
    async with make_stack(**settings) as stack:
        checks: Guard = stack.gateway.app.ctx.guard
        for index in range(300):
            name = secrets.token_hex(8)
            path = f"/webhooks/plivo/{name}" if index % 2 else f"/webhooks/{name}/{index}"
            response = await stack.http.post(path, content=ONE, headers=BASIC)
            assert response.status_code == 404
        assert (len(checks.per_account), len(checks.auth_failures)) == (0, 0)
        # the rejection log's budget is per provider and reason, never per account
        assert len(stack.gateway.app.ctx.rejections.limiter) == 2
        form = {"MessageUUID": "p-9", "Status": "sent", "ErrorCode": ""}
        genuine = plivo_post(form, token="plivo-eu-token", path="/webhooks/plivo/eu")
        assert (await stack.http.post(**genuine)).status_code == 200
        assert len(checks.per_account) == 1


async def test_too_many_headers_get_431(make_stack: StackFactory) -> None:
    async with make_stack(max_headers=20) as stack:
        headers = {**BASIC, **{f"X-Extra-{index}": "x" for index in range(30)}}
        response = await stack.http.post("/webhooks/infobip", content=ONE, headers=headers)
        assert response.status_code == 431
        assert response.json()["error"] == "headers_too_large"


async def test_items_per_request_limit(make_stack: StackFactory) -> None:
    async with make_stack(max_items_per_request=3) as stack:
        item = json.loads(ONE)["results"][0]
        body = json.dumps({"results": [{**item, "messageId": f"m-{index}"} for index in range(4)]})
        response = await stack.http.post("/webhooks/infobip", content=body, headers=BASIC)
        assert response.status_code == 413
        assert "3 reports" in response.json()["reason"]
        assert await stack.stored_messages() == 0


async def test_the_accepted_request_itself_may_come_again(make_stack: StackFactory) -> None:
    """A provider whose 200 was lost resends the same signed request: a duplicate, not 401."""
    replays = REGISTRY.get_sample_value(
        "dlrhub_signature_failures_total", {"provider": "plivo", "reason": "replayed"}
    )
    async with make_stack() as stack:
        request = plivo_post(
            {"MessageUUID": "p-3", "Status": "sent", "ErrorCode": ""}, nonce="nonce-3"
        )
        assert (await stack.http.post(**request)).json()["stored"] == 1
        for _ in range(3):
            again = await stack.http.post(**request)
            assert again.status_code == 200
            assert again.json()["duplicates"] == 1
    after = REGISTRY.get_sample_value(
        "dlrhub_signature_failures_total", {"provider": "plivo", "reason": "replayed"}
    )
    assert after == replays  # the gateway serves /metrics from this process's registry


async def test_a_retry_after_503_with_the_same_nonce_goes_through(tmp_path: Path) -> None:
    async with running_statusd(statusd_settings(tmp_path)) as first:
        port = first.port
    request = plivo_post({"MessageUUID": "p-2", "Status": "sent", "ErrorCode": ""}, nonce="nonce-9")
    async with (
        running_gateway(
            ENV, f"127.0.0.1:{port}", public_url=PUBLIC_URL, ingest_deadline_seconds=1
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        assert (await http.post(**request)).status_code == 503
        async with running_statusd(statusd_settings(tmp_path, statusd_port=port)):
            for _ in range(50):
                response = await http.post(**request)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200

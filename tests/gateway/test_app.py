"""The app (gateway/app.py) over real HTTP: what Sanic refuses before a handler runs (an
unknown route, a method no route takes, headers too large, an unknown ``Expect``) is answered
with the same JSON body as every other error."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from tests.gateway.conftest import Stack, StackFactory
from tests.gateway.test_intake import BASIC, infobip_body


def requests_counted(outcome: str) -> float:
    labels = {"provider": "unknown", "outcome": outcome}
    return REGISTRY.get_sample_value("dlrhub_webhook_requests_total", labels) or 0.0


async def test_unknown_routes_and_methods_get_the_error_body(stack: Stack) -> None:
    missing = await stack.http.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert missing.json()["reason"]
    wrong = await stack.http.put("/webhooks/infobip", content=infobip_body("x"), headers=BASIC)
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"
    assert wrong.json()["reason"]


async def test_huge_header_is_refused(stack: Stack) -> None:
    before = requests_counted("too_large")
    response = await stack.http.post(
        "/webhooks/infobip",
        content=infobip_body("x"),
        headers={**BASIC, "Content-Type": "application/json", "X-Big": "x" * 20_000},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert requests_counted("too_large") == before + 1
    assert await stack.stored_messages() == 0


async def test_an_unknown_expectation_is_a_4xx_with_the_error_body(stack: Stack) -> None:
    response = await stack.http.post(
        "/webhooks/infobip", content=b"{}", headers={**BASIC, "Expect": "teapot"}
    )
    assert response.status_code == 417
    assert response.json()["error"] == "bad_request"
    assert response.json()["reason"]


async def test_headers_that_do_not_arrive_in_time_get_408(make_stack: StackFactory) -> None:
    async with make_stack(request_timeout_seconds=0.5) as stack:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
        writer.write(b"POST /webhooks/infobip HTTP/1.1\r\nHost: x\r\n")  # and no more
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # until the server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"error":"request_timeout"' in answer


async def test_hostile_json_is_refused_from_its_bytes(make_stack: StackFactory) -> None:
    """1 MiB bodies built to be expensive to decode, to an endpoint that parses without
    credentials (as SNS must before it can verify): too deep is 400, too many arrays 413."""
    deep = b"[" + b"[[]," * 40 + b"]" * 40 + b"," + b"1," * 500_000 + b"1]"
    flat = b"[" + b"[]," * 349_000 + b"[]]"
    headers = {"Content-Type": "application/json"}
    async with make_stack(insecure_providers="telnyx", max_body_bytes=2 * 1024 * 1024) as stack:
        refused = await stack.http.post("/webhooks/telnyx", content=deep, headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (400, "bad_request")
        assert "nested deeper than" in refused.json()["reason"]
        refused = await stack.http.post("/webhooks/telnyx", content=flat, headers=headers)
        assert (refused.status_code, refused.json()["error"]) == (413, "too_large")
        assert (await stack.http.get("/healthz")).status_code == 200

"""Health, readiness and metrics over real HTTP to a running gateway, and the webhook handler
answering and counting what the request path (test_intake.py) decided."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sanic.response import HTTPResponse

from gateway.routes import Answer
from tests.gateway.conftest import Stack
from tests.gateway.test_intake import BASIC, infobip_body, post_infobip


async def test_health_readiness_and_metrics(stack: Stack) -> None:
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}
    assert (await stack.http.get("/readyz")).status_code == 200
    await post_infobip(stack, infobip_body("m-1"))
    await post_infobip(stack, infobip_body("m-1"), headers={"Content-Type": "application/json"})
    text = (await stack.http.get("/metrics")).text
    assert 'dlrhub_webhook_requests_total{outcome="ok",provider="infobip"}' in text
    assert 'dlrhub_webhook_requests_total{outcome="unauthorized",provider="infobip"}' in text
    assert 'dlrhub_signature_failures_total{provider="infobip",reason="missing"}' in text
    assert (
        'dlrhub_webhook_reports_total{provider="infobip",result="stored",status="delivered"}'
        in text
    )


class BrokenCoalescer:
    """A coalescer with a bug."""

    async def submit(self, *reports: object) -> None:
        raise RuntimeError("a bug")


def requests_counted(outcome: str) -> float:
    labels = {"provider": "infobip", "outcome": outcome}
    return REGISTRY.get_sample_value("dlrhub_webhook_requests_total", labels) or 0.0


async def test_a_bug_is_answered_503_and_counted_once(stack: Stack) -> None:
    before = {outcome: requests_counted(outcome) for outcome in ("ok", "unavailable")}
    app = stack.gateway.app
    working, app.ctx.coalescer = app.ctx.coalescer, BrokenCoalescer()
    try:
        response = await post_infobip(
            stack, infobip_body("bug-1"), {**BASIC, "X-Request-Id": "req-1"}
        )
    finally:
        app.ctx.coalescer = working
    assert response.status_code == 503
    assert response.json() == {"error": "unavailable", "reason": "internal error; please retry"}
    assert response.headers["Retry-After"]
    assert response.headers["X-Request-Id"] == "req-1"
    assert requests_counted("unavailable") == before["unavailable"] + 1
    assert requests_counted("ok") == before["ok"]


async def test_the_request_id_is_the_callers_when_sane(stack: Stack) -> None:
    given = await post_infobip(stack, infobip_body("id-1"), {**BASIC, "X-Request-Id": "abc.1"})
    assert given.headers["X-Request-Id"] == given.json()["request_id"] == "abc.1"
    refused = await post_infobip(stack, infobip_body("id-2"), {"X-Request-Id": "no way"})
    assert refused.status_code == 401
    assert len(refused.headers["X-Request-Id"]) == 24


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-Id": "abc", "content-length": "2", "connection": "keep-alive"},
        {"X-Request-Id": "a\r\nSet-Cookie: x=1", "content-length": "2"},  # Sanic strips CR LF
        {"X-Note\x00": "\u00e9t\u00e9\udcff", "connection": "close"},  # NUL in a name; not ASCII
    ],
)
def test_an_answer_sends_the_headers_sanic_would(headers: dict[str, str]) -> None:
    ours = Answer(b"{}", headers=dict(headers), content_type="application/json")
    sanics = HTTPResponse(b"{}", headers=dict(headers), content_type="application/json")
    assert list(ours.processed_headers) == list(sanics.processed_headers)

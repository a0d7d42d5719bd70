"""HTTP routes: the webhooks, health, readiness and metrics.

``POST /webhooks/<provider>`` (the default account) and ``/webhooks/<provider>/<account>``;
GET too, for the providers that call with query parameters. A webhook is answered 200 only
after statusd confirmed the commit of every report it carried.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, raw

from common.status_names import status_label
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway import errors, metrics
from gateway.forwarder import Forwarder
from gateway.guard import Guard
from gateway.providers import PROVIDERS, InboundRequest, Parsed, Provider
from gateway.providers.base import build_request
from gateway.replay import request_digest
from gateway.settings import GatewayConfig

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_RESULT_LABELS: dict[int, str] = {
    ingest_pb.INGEST_OUTCOME_STORED: "stored",
    ingest_pb.INGEST_OUTCOME_DUPLICATE: "duplicate",
    ingest_pb.INGEST_OUTCOME_STALE: "stale",
}


def register(app: Sanic[Any, Any]) -> None:
    methods = ["GET", "POST"]
    # Streamed, so the body is read under our own deadline (Sanic's request timeout covers
    # only the headers): a client trickling its body is cut off with 408.
    app.add_route(webhook, "/webhooks/<provider:str>", methods=methods, name="webhook", stream=True)
    app.add_route(
        webhook,
        "/webhooks/<provider:str>/<account:str>",
        methods=methods,
        name="webhook_account",
        stream=True,
    )
    app.add_route(healthz, "/healthz", methods=["GET"])
    app.add_route(readyz, "/readyz", methods=["GET"])
    app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")


def provider_label(request: Request) -> str:
    """The provider named in the path when it is a known one (bounded metric labels)."""
    parts = request.path.split("/")
    name = parts[2] if len(parts) > 2 and parts[1] == "webhooks" else ""
    return name if name in PROVIDERS else "unknown"


async def webhook(request: Request, provider: str, account: str = "") -> HTTPResponse:
    started = time.perf_counter()
    config: GatewayConfig = request.app.ctx.config
    request_id = _request_id(request)
    label = provider if provider in PROVIDERS else "unknown"
    outcome = "ok"
    guard: Guard = request.app.ctx.guard
    client = guard.client(request)
    try:
        guard.admit(request, client, label, account)
        endpoint = config.endpoints.get((provider, account))
        if endpoint is None:
            raise errors.NotFound(_not_found_reason(config, provider, account))
        if request.method not in endpoint.methods:
            raise errors.MethodNotAllowed(
                f"{provider} calls with {' or '.join(sorted(endpoint.methods))}"
            )
        await _receive_body(
            request, config.settings.max_body_bytes, config.settings.request_timeout_seconds
        )
        inbound = inbound_request(request, config.settings.public_base, request_id)
        parsed = endpoint.handle(inbound)
        digest = request_digest(inbound) if parsed.replay_key else b""
        guard.check_replay(parsed.replay_key, digest)
        if len(parsed.reports) + len(parsed.quarantined) > config.settings.max_items_per_request:
            raise errors.PayloadTooLarge(
                f"more than {config.settings.max_items_per_request} reports in one request"
            )
        response = await _forward(request.app.ctx.forwarder, endpoint, inbound, parsed)
        guard.accepted(parsed.replay_key, digest)
        return response
    except errors.WebhookError as exc:
        outcome = exc.kind
        if isinstance(exc, errors.Unauthenticated):
            metrics.SIGNATURE_FAILURES.labels(label, exc.label).inc()
            guard.failed_authentication(client)
        return error_response(exc, request_id)
    finally:
        metrics.REQUESTS.labels(label, outcome).inc()
        metrics.REQUEST_LATENCY.labels(label).observe(time.perf_counter() - started)


async def _forward(
    forwarder: Forwarder, endpoint: Provider, inbound: InboundRequest, parsed: Parsed
) -> HTTPResponse:
    answer = await forwarder.ingest(parsed.reports, parsed.quarantined)
    now = time.time()
    lags = metrics.DLR_LATENCY.labels(endpoint.name)
    results: Counter[tuple[int, int]] = Counter()
    for report, outcome in zip(parsed.reports, answer.outcomes, strict=False):
        results[report.status, outcome] += 1
        if outcome == ingest_pb.INGEST_OUTCOME_STORED and report.HasField("event_time"):
            lags.observe(max(now - report.event_time.seconds, 0.0))
    for (status, result_code), count in results.items():
        result = _RESULT_LABELS.get(result_code, "other")
        metrics.REPORTS.labels(endpoint.name, status_label(status), result).inc(count)
    if parsed.quarantined:
        metrics.REPORTS.labels(endpoint.name, "unspecified", "quarantined").inc(
            len(parsed.quarantined)
        )
    return json(
        {
            "stored": answer.stored,
            "duplicates": answer.duplicates,
            "stale": answer.stale,
            "quarantined": answer.quarantined,
            "request_id": inbound.request_id,
        },
        headers={"X-Request-Id": inbound.request_id},
    )


async def _receive_body(request: Request, limit: int, timeout: float) -> None:
    """Reads the body into ``request.body``: at most ``limit`` bytes (413), within ``timeout``
    seconds (408). Streamed routes get neither check from Sanic, so both live here. The
    deadline is one timer handle that cancels the handler (cheaper than asyncio.timeout on
    the hot path)."""
    declared = request.headers.get("content-length", "")
    stream: Any = request.stream  # Sanic's Http; untyped
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if task is not None:
            task.cancel()

    deadline = loop.call_later(timeout, expire)
    try:
        request.body = await _read_limited(stream, declared, limit)
    except (asyncio.CancelledError, errors.PayloadTooLarge) as exc:
        if isinstance(exc, asyncio.CancelledError) and not expired:
            raise  # cancelled for another reason (the client left, shutdown)
        # Answer, then drop the connection rather than wait for the rest of the body.
        stream.keep_alive = False
        loop.call_later(0.2, request.transport.close)
        if isinstance(exc, errors.PayloadTooLarge):
            raise
        if task is not None:
            task.uncancel()
        raise errors.RequestTimeout(f"the body did not arrive within {timeout:g} s") from None
    finally:
        deadline.cancel()


async def _read_limited(stream: Any, declared: str, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes, declared or received."""
    if declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while (chunk := await stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def inbound_request(request: Request, public_base: str, request_id: str) -> InboundRequest:
    """The framework-free view of a request, with the public URL the provider signed."""
    query_string = request.query_string
    return build_request(
        request.method,
        public_base + request.path + (f"?{query_string}" if query_string else ""),
        request.headers.items(),
        request.body or b"",
        request_id=request_id,
        received_micros=time.time_ns() // 1_000,
    )


def error_response(error: errors.WebhookError, request_id: str = "") -> HTTPResponse:
    """The JSON answer for an expected error: ``{"error": kind, "reason": text}``."""
    status = errors.http_status(error)
    headers = {"X-Request-Id": request_id} if request_id else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    elif status == 503:
        headers["Retry-After"] = str(errors.RETRY_AFTER_SECONDS)
    return json({"error": error.kind, "reason": error.reason}, status=status, headers=headers)


async def healthz(request: Request) -> HTTPResponse:
    """The process is alive."""
    return json({"status": "ok"})


async def readyz(request: Request) -> HTTPResponse:
    """Ready when statusd answers SERVING: only then can a webhook be acknowledged."""
    forwarder: Forwarder | None = request.app.ctx.forwarder
    if forwarder is not None and await forwarder.ready():
        return json({"status": "ready"})
    return json({"status": "not ready", "reason": "statusd is not serving"}, status=503)


async def metrics_endpoint(request: Request) -> HTTPResponse:
    return raw(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(12)


def _not_found_reason(config: GatewayConfig, provider: str, account: str) -> str:
    if provider not in PROVIDERS:
        return f"unknown provider {provider[:64]!r}; known: {', '.join(PROVIDERS)}"
    if account:
        return f"no account {account[:64]!r} is configured for {provider}"
    return f"{provider} is disabled: no credentials are configured"

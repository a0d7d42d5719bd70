"""HTTP routes: the webhooks, health, readiness and metrics.

``POST /webhooks/<provider>`` (the default account) and ``/webhooks/<provider>/<account>``;
GET too, for the providers that call with query parameters. A webhook is answered 200 only
after statusd confirmed the commit of every report it carried: its path is
:func:`gateway.intake.receive`, its refusals are answered by :func:`gateway.errors.respond`,
and it is counted once, by :func:`gateway.metrics.webhook_answered`, and logged when refused
or quarantined, by :func:`gateway.audit.webhook_answered`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sanic import Request, Sanic
from sanic.helpers import has_message_body
from sanic.response import HTTPResponse, json, raw

from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway import audit, errors, intake, metrics, tracing
from gateway.forwarder import Forwarder
from gateway.settings import GatewayConfig


def register(app: Sanic[Any, Any]) -> None:
    methods = ["GET", "POST"]
    # Streamed, so the body is read under our own deadline (Sanic's request timeout covers
    # only the headers): a client trickling its body is cut off with 408.
    handler = tracing.traced(webhook, "/webhooks/{provider}")
    app.add_route(handler, "/webhooks/<provider:str>", methods=methods, name="webhook", stream=True)
    app.add_route(
        tracing.traced(webhook, "/webhooks/{provider}/{account}"),
        "/webhooks/<provider:str>/<account:str>",
        methods=methods,
        name="webhook_account",
        stream=True,
    )
    app.add_route(healthz, "/healthz", methods=["GET"])
    app.add_route(readyz, "/readyz", methods=["GET"])
    app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")


async def webhook(request: Request, provider: str, account: str = "") -> HTTPResponse:
    started = time.perf_counter()
    request_id = intake.request_id(request)
    error: errors.WebhookError | None = None
    accepted: intake.Accepted | None = None
    try:
        accepted = await intake.receive(request, provider, account, request_id)
    except Exception as exc:
        config: GatewayConfig = request.app.ctx.config
        where = f"{request.method} {request.path}"
        error = errors.expected(exc, config.settings.max_body_bytes, where)
        return errors.respond(error, request_id)
    finally:
        metrics.webhook_answered(
            metrics.provider_label(provider),
            time.perf_counter() - started,
            error,
            (accepted.parsed, accepted.answer) if accepted else None,
        )
        parsed = accepted.parsed if accepted else None
        audit.webhook_answered(request, provider, account, request_id, error, parsed=parsed)
    return _accepted_response(accepted.answer, request_id)


#: What Sanic strips from every header name and value it sends.
_STRIPPED = re.compile(b"[\r\n\x00]")


class Answer(HTTPResponse):
    """An HTTP response whose headers go out as Sanic's would, found faster: Sanic strips
    CR, LF and NUL from each header name and value one by one (:attr:`processed_headers`); an
    answer's headers (its content type, length, ``Connection``, the checked request id) hold
    none, so one search over all of them shows there is nothing to strip."""

    __slots__ = ()

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        if has_message_body(self.status):  # type: ignore[no-untyped-call]
            self.headers.setdefault("content-type", self.content_type)
        encoded = [
            (name.encode("ascii"), f"{value}".encode(errors="surrogateescape"))
            for name, value in self.headers.items()
        ]
        if _STRIPPED.search(b"".join(map(b"".join, encoded))):
            return super().processed_headers
        return iter(encoded)


def _accepted_response(answer: ingest_pb.IngestReportsResponse, request_id: str) -> HTTPResponse:
    body = {
        "stored": answer.stored,
        "duplicates": answer.duplicates,
        "stale": answer.stale,
        "quarantined": answer.quarantined,
        "request_id": request_id,
    }
    # Built directly: Sanic's json() adds a layer of its own, and this is sent once a webhook.
    return Answer(
        orjson.dumps(body), headers={"X-Request-Id": request_id}, content_type="application/json"
    )


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

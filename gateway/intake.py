"""A webhook's path through the gateway, in order: :func:`receive`.

admission (:mod:`gateway.admission`) → admit (request limits, :mod:`gateway.guard`) → read the
body (:mod:`gateway.body`) → verify and parse (the provider's ``handle``) → check what it
carried (replayed nonce, too many items) and record its nonces (the guard) → forward to statusd
and wait for the commit (:mod:`gateway.coalescer`, which gathers concurrent webhooks into one
call of :mod:`gateway.forwarder`). Any refusal is raised as a
:class:`~gateway.errors.WebhookError`; this module never builds a response
(:func:`gateway.errors.respond` does).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from sanic import Request

from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway import body
from gateway.admission import Admission
from gateway.coalescer import Coalescer
from gateway.errors import MethodNotAllowed, NotFound, Overloaded, Unauthenticated
from gateway.guard import Guard
from gateway.providers import PROVIDERS, InboundRequest, Parsed, Provider
from gateway.providers.base import build_request
from gateway.settings import GatewayConfig

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Accepted:
    """A webhook statusd committed: what it carried and statusd's answer."""

    request: InboundRequest
    parsed: Parsed
    answer: ingest_pb.IngestReportsResponse


def request_id(request: Request) -> str:
    """The caller's ``X-Request-Id`` when it is a sane one, else a new random id."""
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else secrets.token_hex(12)


async def receive(request: Request, provider: str, account: str, request_id: str) -> Accepted:
    """Takes one webhook from arrival to statusd's commit; raises WebhookError to refuse it.
    Admission first (:mod:`gateway.admission`): a gateway holding all it may refuses at once."""
    admission: Admission = request.app.ctx.admission
    try:
        admission.enter(request.app.ctx.coalescer)
    except Overloaded:
        body.drop_connection(request)
        raise
    try:
        return await _admitted(request, provider, account, request_id)
    finally:
        admission.leave()


async def _admitted(request: Request, provider: str, account: str, request_id: str) -> Accepted:
    config: GatewayConfig = request.app.ctx.config
    settings = config.settings
    guard: Guard = request.app.ctx.guard
    coalescer: Coalescer = request.app.ctx.coalescer
    client = guard.client(request)
    guard.admit(request, client)
    endpoint = _endpoint(config, request.method, provider, account)
    await body.receive(
        request, settings.max_body_bytes, settings.request_timeout_seconds, request.app.ctx.loop
    )
    inbound = inbound_request(request, settings.public_base, request_id)
    try:
        await endpoint.prepare(inbound)
        parsed = endpoint.handle(inbound)
        guard.check_parsed(parsed, inbound)
    except Unauthenticated as failed:
        guard.failed_authentication(client, failed)
        raise
    guard.authenticated(provider, account)
    answer = await coalescer.submit(parsed.reports, parsed.quarantined)
    return Accepted(inbound, parsed, answer)


def _endpoint(config: GatewayConfig, method: str, provider: str, account: str) -> Provider:
    endpoint = config.endpoints.get((provider, account))
    if endpoint is None:
        if provider not in PROVIDERS:
            reason = f"unknown provider {provider[:64]!r}; known: {', '.join(PROVIDERS)}"
        elif account:
            reason = f"no account {account[:64]!r} is configured for {provider}"
        else:
            reason = f"{provider} is disabled: no credentials are configured"
        raise NotFound(reason)
    if method not in endpoint.methods:
        raise MethodNotAllowed(f"{provider} calls with {' or '.join(sorted(endpoint.methods))}")
    return endpoint


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

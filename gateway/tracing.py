"""The gateway's spans (traces are on only with an OTLP endpoint: :mod:`dlrhub_common.tracing`).

* ``POST /webhooks/{provider}`` (SERVER): one per webhook request, from the route's handler
  (:func:`traced`), child of a ``traceparent`` the request carries (a tracing proxy's).
  Attributes: ``http.request.method``, ``http.route``, ``http.response.status_code``,
  ``dlrhub.provider``, ``dlrhub.account`` (``unknown`` unless configured),
  ``dlrhub.request_id``, and once parsed
  ``dlrhub.reports`` and ``dlrhub.quarantined`` (:func:`submitted`). Error status on 5xx.
* ``dlrhub.v1.IngestService/IngestReports`` (CLIENT): one per call to statusd
  (:func:`ingest_call`). The coalescer lets concurrent webhooks share a call: the call's span
  is a child of the first webhook's span and links to the others, and each of those gets a
  link back to it. The call's metadata carries its W3C trace context (:func:`outgoing`), so
  statusd's spans join the first webhook's trace.

No attribute holds a phone number, a message id, a query string or a body, and a failed span
says only the exception's type (:func:`dlrhub_common.tracing.span`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from sanic import Request
from sanic.response import HTTPResponse

from dlrhub_common import tracing
from gateway.providers import PROVIDERS

Webhook = Callable[..., Coroutine[Any, Any, HTTPResponse]]
INGEST_CALL = "dlrhub.v1.IngestService/IngestReports"


def traced(handler: Webhook, route: str) -> Webhook:
    """``handler`` (the webhook route's) in a SERVER span per request while traces are on;
    ``handler`` itself while they are off."""
    if tracing.tracer is None:
        return handler

    @functools.wraps(handler)
    async def traced_webhook(request: Request, provider: str, account: str = "") -> HTTPResponse:
        tracer = tracing.tracer
        if tracer is None:
            return await handler(request, provider, account)
        with tracing.span(
            tracer,
            f"{request.method} {route}",
            context=tracing.extract(request.headers.items()),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": route,
                **_names(request, provider, account),
            },
        ) as span:
            response = await handler(request, provider, account)
            span.set_attribute("http.response.status_code", response.status)
            span.set_attribute("dlrhub.request_id", response.headers.get("x-request-id", ""))
            if response.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    return traced_webhook


def _names(request: Request, provider: str, account: str) -> dict[str, str]:
    """Provider and account as configured; ``unknown`` for names that are not (a path may
    carry anything, a phone number too)."""
    if (provider, account) in request.app.ctx.config.endpoints:
        return {"dlrhub.provider": provider, "dlrhub.account": account}
    return {
        "dlrhub.provider": provider if provider in PROVIDERS else "unknown",
        "dlrhub.account": "unknown" if account else "",
    }


def submitted(reports: int, quarantined: int) -> trace.Span | None:
    """The current webhook's span, with what it carries (None while traces are off)."""
    if tracing.tracer is None:
        return None
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    span.set_attribute("dlrhub.reports", reports)
    span.set_attribute("dlrhub.quarantined", quarantined)
    return span


@contextlib.contextmanager
def ingest_call(webhooks: Sequence[trace.Span | None], reports: int) -> Iterator[None]:
    """A CLIENT span for one IngestReports call on behalf of ``webhooks`` (their spans from
    :func:`submitted`), current for the duration; nothing while traces are off."""
    tracer = tracing.tracer
    spans = [span for span in webhooks if span is not None]
    if tracer is None:
        yield
        return
    # Never the context the coalescer's task inherited: a webhook's span or a new trace.
    parent = trace.set_span_in_context(spans[0]) if spans else Context()
    with tracing.span(
        tracer,
        INGEST_CALL,
        context=parent,
        kind=trace.SpanKind.CLIENT,
        links=[trace.Link(span.get_span_context()) for span in spans[1:]],
        attributes={
            "rpc.system": "grpc",
            "rpc.service": "dlrhub.v1.IngestService",
            "rpc.method": "IngestReports",
            "dlrhub.reports": reports,
            "dlrhub.webhooks": len(webhooks),
        },
    ) as call:
        for span in spans[1:]:
            span.add_link(call.get_span_context())
        yield


def outgoing(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``metadata`` and the current span's trace context (``traceparent``) while traces are
    on; ``metadata`` itself while they are off."""
    if tracing.tracer is None:
        return metadata
    carrier: dict[str, str] = {}
    tracing.inject(carrier)
    return (*metadata, *carrier.items())

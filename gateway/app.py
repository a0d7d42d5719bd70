"""The Sanic application: ``create_app(config)`` wires routes, errors, and the statusd channel.

Errors that escape a handler, or arise before one is chosen (unknown route, wrong method,
headers too large), are answered like a webhook's: :func:`gateway.errors.expected` maps them,
:func:`gateway.errors.respond` answers them, :mod:`gateway.audit` logs those of webhooks.
Tested over HTTP in tests/gateway/test_app.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sanic import Request, Sanic
from sanic import exceptions as sanic_errors
from sanic.response import HTTPResponse

from gateway import audit, errors, intake, metrics, routes
from gateway.admission import Admission
from gateway.coalescer import Coalescer
from gateway.forwarder import Forwarder
from gateway.guard import Guard
from gateway.settings import GatewayConfig

APP_NAME = "dlrhub-gateway"


def create_app(config: GatewayConfig, forwarder: Forwarder | None = None) -> Sanic[Any, Any]:
    """The gateway app; ``forwarder`` defaults to a channel to the configured statusd, and a
    :class:`~gateway.coalescer.Coalescer` gathers concurrent webhooks into its calls. Serve
    it with ``protocol=``:class:`~gateway.admission.CappedHttpProtocol` (the connection cap)."""
    settings = config.settings
    app: Sanic[Any, Any] = Sanic(APP_NAME, configure_logging=False, dumps=orjson.dumps)
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.REQUEST_TIMEOUT = settings.request_timeout_seconds
    app.config.RESPONSE_TIMEOUT = (
        settings.request_timeout_seconds + settings.ingest_deadline_seconds + 5
    )
    app.config.KEEP_ALIVE_TIMEOUT = settings.keep_alive_timeout_seconds
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.shutdown_grace_seconds
    app.config.NOISY_EXCEPTIONS = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.config = config
    app.ctx.forwarder = forwarder
    app.ctx.guard = Guard(settings)
    app.ctx.rejections = audit.RejectionLog(
        settings.rejection_log_per_minute, settings.rejection_log_summary_seconds
    )
    app.ctx.admission = Admission(settings.max_requests_in_flight)

    @app.before_server_start
    async def _connect(app: Sanic[Any, Any]) -> None:
        if app.ctx.forwarder is None:
            app.ctx.forwarder = Forwarder.from_settings(settings)
        app.ctx.loop = asyncio.get_running_loop()
        app.ctx.coalescer = Coalescer(
            app.ctx.forwarder.ingest,
            loop=app.ctx.loop,
            max_reports=settings.coalesce_max_reports,
            max_in_flight=settings.coalesce_max_calls,
            max_queued=settings.max_queued_reports,
        )
        app.ctx.summaries = asyncio.create_task(app.ctx.rejections.summarize_periodically())

    @app.after_server_stop
    async def _disconnect(app: Sanic[Any, Any]) -> None:
        app.ctx.summaries.cancel()
        app.ctx.rejections.summarize()
        if forwarder is None and app.ctx.forwarder is not None:
            await app.ctx.forwarder.close()

    routes.register(app)
    app.error_handler.add(Exception, _answer_error)
    return app


def _answer_error(request: Request, exception: Exception) -> HTTPResponse:
    limit = request.app.ctx.config.settings.max_body_bytes
    error = errors.expected(exception, limit, f"{request.method} {request.path}")
    if isinstance(exception, sanic_errors.PayloadTooLarge):
        # Refused before any handler ran (a webhook's handler counts its own answer).
        parts = request.path.split("/")
        named = parts[2] if len(parts) > 2 and parts[1] == "webhooks" else ""
        metrics.webhook_answered(metrics.provider_label(named), None, error)
        request_id = intake.request_id(request)
        audit.webhook_answered(request, named, "", request_id, error)
        return errors.respond(error, request_id)
    return errors.respond(error)

"""The Sanic application: ``create_app(config)`` wires routes, errors, and the statusd channel.

Errors are answered in one place, :func:`_answer_error`: expected ones
(:mod:`gateway.errors`) get their status from ``HTTP_STATUS`` and a JSON body
``{"error": kind, "reason": text}``; Sanic's own (unknown route, too large) are mapped the same
way; anything unexpected is logged and answered 503 so the provider retries, because a 2xx
would promise a commit that never happened.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sanic import Request, Sanic
from sanic import exceptions as sanic_errors
from sanic.response import HTTPResponse, json

from gateway import errors, metrics, routes
from gateway.forwarder import Forwarder
from gateway.guard import Guard
from gateway.routes import error_response
from gateway.settings import GatewayConfig

log = logging.getLogger(__name__)

APP_NAME = "dlrhub-gateway"

#: Sanic's own exceptions, mapped onto ours so every answer has the same shape.
_SANIC_ERRORS: dict[type[Exception], type[errors.WebhookError]] = {
    sanic_errors.PayloadTooLarge: errors.PayloadTooLarge,
    sanic_errors.NotFound: errors.NotFound,
    sanic_errors.MethodNotAllowed: errors.MethodNotAllowed,
    sanic_errors.BadRequest: errors.Malformed,
}


def create_app(config: GatewayConfig, forwarder: Forwarder | None = None) -> Sanic[Any, Any]:
    """The gateway app; ``forwarder`` defaults to a channel to the configured statusd."""
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

    @app.before_server_start
    async def _connect(app: Sanic[Any, Any]) -> None:
        if app.ctx.forwarder is None:
            app.ctx.forwarder = Forwarder.from_settings(settings)

    @app.after_server_stop
    async def _disconnect(app: Sanic[Any, Any]) -> None:
        if forwarder is None and app.ctx.forwarder is not None:
            await app.ctx.forwarder.close()

    routes.register(app)
    app.error_handler.add(Exception, _answer_error)
    return app


def _answer_error(request: Request, exception: Exception) -> HTTPResponse:
    if isinstance(exception, errors.WebhookError):
        return error_response(exception)
    for sanic_type, ours in _SANIC_ERRORS.items():
        if isinstance(exception, sanic_type):
            reason = str(exception) or ours.__doc__ or ours.kind
            if isinstance(exception, sanic_errors.PayloadTooLarge):
                limit = request.app.ctx.config.settings.max_body_bytes
                reason = f"body is larger than {limit} bytes"
                provider = routes.provider_label(request)
                metrics.REQUESTS.labels(provider, errors.PayloadTooLarge.kind).inc()
            return error_response(ours(reason))
    if isinstance(exception, sanic_errors.SanicException) and 400 <= exception.status_code < 500:
        return json(
            {"error": "bad_request", "reason": str(exception)}, status=exception.status_code
        )
    log.exception("unexpected error answering %s %s", request.method, request.path)
    return error_response(errors.UpstreamUnavailable("internal error; please retry"))

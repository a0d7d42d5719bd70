"""Expected errors of the gateway, the one table that maps them to HTTP answers, and the one
function that answers them.

Provider modules and the request path raise these (they know nothing of Sanic);
:func:`respond` turns every error into ``{"error": <kind>, "reason": <text>}`` with the status
from :data:`HTTP_STATUS`. Sanic's own errors (unknown route, wrong method, too large) are
mapped onto ours first (:data:`SANIC_ERRORS`, :func:`expected`). Anything else that escapes is
a bug: logged with its traceback, answered 503 so the provider retries, since a 2xx would
promise a commit that never happened.
"""

from __future__ import annotations

import logging

from sanic import exceptions as sanic_errors
from sanic.response import HTTPResponse, json

log = logging.getLogger(__name__)


class WebhookError(Exception):
    """Base of the errors the gateway answers on purpose; ``reason`` goes to the caller."""

    #: Short, stable name for the answer body and the ``outcome`` metric label.
    kind = "error"

    def __init__(self, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Malformed(WebhookError):
    """The body cannot be decoded, or its envelope fails validation."""

    kind = "bad_request"


class Unauthenticated(WebhookError):
    """Missing or wrong credentials or signature. ``label`` says which, for metrics:
    ``missing`` (no credentials in the request), ``invalid`` (present but wrong),
    ``stale`` (outside the time window) or ``replayed`` (a nonce accepted on another request)."""

    kind = "unauthorized"

    def __init__(self, reason: str, *, label: str = "invalid") -> None:
        super().__init__(reason)
        self.label = label


class NotFound(WebhookError):
    """Unknown or disabled provider or account."""

    kind = "not_found"


class MethodNotAllowed(WebhookError):
    """The provider never calls with this HTTP method."""

    kind = "method_not_allowed"


class RequestTimeout(WebhookError):
    """The client did not send the whole request in time."""

    kind = "request_timeout"


class PayloadTooLarge(WebhookError):
    """The body is larger than DLRHUB_MAX_BODY_BYTES."""

    kind = "too_large"


class UnsupportedMediaType(WebhookError):
    """The content type is not one the provider sends."""

    kind = "unsupported_media_type"


class HeadersTooLarge(WebhookError):
    """Too many request headers, or too large."""

    kind = "headers_too_large"


class RateLimited(WebhookError):
    """Too many requests from this client or for this account."""

    kind = "rate_limited"


class UpstreamUnavailable(WebhookError):
    """statusd did not confirm the commit; the provider must retry (nothing is lost)."""

    kind = "unavailable"


class Overloaded(WebhookError):
    """The gateway holds as much as it may (requests in flight, reports queued for statusd,
    DLRHUB_MAX_*): refused at once, before the body is read where possible; the provider
    retries later and nothing is lost."""

    kind = "overloaded"


class NotReady(WebhookError):
    """Returned by the provider to ask for a retry (Vonage Messages unsigned callbacks)."""

    kind = "unavailable"


class ClientError(WebhookError):
    """Another 4xx refused by the HTTP layer itself (an unknown ``Expect``, ...): its status
    is the HTTP layer's."""

    kind = "bad_request"

    def __init__(self, reason: str, *, status: int) -> None:
        super().__init__(reason)
        self.status = status


#: The mapping from expected errors to HTTP status codes.
HTTP_STATUS: dict[type[WebhookError], int] = {
    Malformed: 400,
    Unauthenticated: 401,
    NotFound: 404,
    MethodNotAllowed: 405,
    RequestTimeout: 408,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    HeadersTooLarge: 431,
    UpstreamUnavailable: 503,
    Overloaded: 503,
    NotReady: 503,
}

#: Seconds a provider is asked to wait before retrying a 503.
RETRY_AFTER_SECONDS = 5


#: Sanic's own exceptions, mapped onto ours so every answer has the same shape.
SANIC_ERRORS: dict[type[Exception], type[WebhookError]] = {
    sanic_errors.PayloadTooLarge: PayloadTooLarge,
    sanic_errors.NotFound: NotFound,
    sanic_errors.MethodNotAllowed: MethodNotAllowed,
    sanic_errors.BadRequest: Malformed,
    sanic_errors.RequestTimeout: RequestTimeout,
}


def http_status(error: WebhookError) -> int:
    """The HTTP status of an expected error (its class or nearest listed base)."""
    if isinstance(error, ClientError):
        return error.status
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def authentication_failure(error: WebhookError | None) -> Unauthenticated | None:
    """The failed authentication behind an answer: ``error`` itself, or what a RateLimited
    of the authentication-failure limit was raised from; None for anything else."""
    failure = error.__cause__ if isinstance(error, RateLimited) else error
    return failure if isinstance(failure, Unauthenticated) else None


def expected(exception: Exception, body_limit: int, where: str = "") -> WebhookError:
    """The expected error an exception stands for: itself, Sanic's error mapped onto ours
    (:data:`SANIC_ERRORS`), or, for a bug, UpstreamUnavailable after logging the traceback
    (``where`` names the request)."""
    if isinstance(exception, WebhookError):
        return exception
    for sanic_type, ours in SANIC_ERRORS.items():
        if isinstance(exception, sanic_type):
            if ours is PayloadTooLarge:
                return PayloadTooLarge(f"body is larger than {body_limit} bytes")
            return ours(str(exception) or ours.__doc__ or ours.kind)
    if isinstance(exception, sanic_errors.SanicException) and 400 <= exception.status_code < 500:
        return ClientError(str(exception), status=exception.status_code)
    log.error("unexpected error answering %s", where, exc_info=exception)
    return UpstreamUnavailable("internal error; please retry")


def respond(error: WebhookError, request_id: str = "") -> HTTPResponse:
    """The HTTP answer to an error: ``{"error": kind, "reason": text}`` with its status, the
    request id, and ``Retry-After`` for 429 and 503."""
    status = http_status(error)
    headers = {"X-Request-Id": request_id} if request_id else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    elif status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return json({"error": error.kind, "reason": error.reason}, status=status, headers=headers)

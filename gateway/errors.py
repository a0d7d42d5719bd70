"""Expected errors of the gateway and the one table that maps them to HTTP answers.

Provider modules and handlers raise these (they know nothing of Sanic); the app turns them
into ``{"error": <kind>, "reason": <text>}`` with the status from :data:`HTTP_STATUS`.
Anything else that escapes is a bug: logged with its traceback, answered 503 so the provider
retries, since a 2xx would promise a commit that never happened.
"""

from __future__ import annotations


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


class NotReady(WebhookError):
    """Returned by the provider to ask for a retry (Vonage Messages unsigned callbacks)."""

    kind = "unavailable"


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
    NotReady: 503,
}

#: Seconds a provider is asked to wait before retrying a 503.
RETRY_AFTER_SECONDS = 5


def http_status(error: WebhookError) -> int:
    """The HTTP status of an expected error (its class or nearest listed base)."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400

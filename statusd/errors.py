"""Expected errors of statusd and the one table that maps them to gRPC status codes.

Handlers raise these; :func:`grpc_code` is the only place that knows which code each gets.
Anything else that escapes a handler is a bug: it is logged with its traceback and the client
sees INTERNAL without details.
"""

from __future__ import annotations

import grpc

from statusd.storage.base import InvalidPosition, PositionGone, StoreUnavailable


class StatusdError(Exception):
    """Base of the errors statusd answers on purpose; the message goes to the client."""


class InvalidArgument(StatusdError):
    """The request is malformed; the message names the field."""


class NotFound(StatusdError):
    """The message is unknown."""


class Unauthenticated(StatusdError):
    """No or unknown credentials."""


class PermissionDenied(StatusdError):
    """Valid credentials that may not call this service."""


class ResourceExhausted(StatusdError):
    """Too many Watch streams, or a subscriber fell too far behind (it should resume from its
    last token); the message says which."""


class Unavailable(StatusdError):
    """statusd cannot serve the call now (shutting down); the client retries or resumes."""


#: The mapping from expected errors to gRPC codes (the first matching class wins).
GRPC_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (PositionGone, grpc.StatusCode.OUT_OF_RANGE),  # a resume token older than the store keeps
    (InvalidPosition, grpc.StatusCode.INVALID_ARGUMENT),  # a page or resume token
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def grpc_code(error: Exception) -> grpc.StatusCode | None:
    """The code for an expected error, or None for an unexpected one."""
    for kind, code in GRPC_CODES:
        if isinstance(error, kind):
            return code
    return None

"""Bearer-token authentication of statusd's services, as one gRPC server interceptor.

Each protected service has its own token set: IngestService (the gateway) and StatusService
(internal readers). A call to a protected service must carry ``authorization: Bearer
<token>`` metadata. A missing, malformed or unknown token is UNAUTHENTICATED; a valid token
of another service's set is PERMISSION_DENIED. A service without tokens is open, and so are
health and reflection, which Kubernetes probes and grpcurl call without credentials.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every
configured token, so the time taken says nothing about how close a guess was. Codes come from
the one table in :mod:`statusd.errors`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

import grpc

from statusd import errors, metrics

log = logging.getLogger(__name__)

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _contains(digests: Sequence[bytes], digest: bytes) -> bool:
    found = False
    for candidate in digests:  # no early exit: every token is compared
        found |= hmac.compare_digest(candidate, digest)
    return found


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, or None when there is none."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks bearer tokens per service (see the module docstring)."""

    def __init__(self, tokens: Mapping[str, Sequence[str]]) -> None:
        """``tokens``: full service name (``dlrhub.v1.IngestService``) → its valid tokens."""
        self._digests = {
            service: tuple(_digest(token) for token in values)
            for service, values in tokens.items()
            if values
        }

    @property
    def protected(self) -> frozenset[str]:
        """The services that require a token."""
        return frozenset(self._digests)

    def check(self, service: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        """Raises Unauthenticated or PermissionDenied unless the call may reach ``service``."""
        if service not in self._digests:
            return
        token = bearer_token(metadata)
        if token is None:
            raise errors.Unauthenticated(
                f"{service} requires credentials: send 'authorization: Bearer <token>' metadata"
            )
        digest = _digest(token)
        allowed = [name for name, digests in self._digests.items() if _contains(digests, digest)]
        if service in allowed:
            return
        if allowed:
            raise errors.PermissionDenied(f"this token is not allowed to call {service}")
        raise errors.Unauthenticated(f"unknown token for {service}")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if handler is None:
            return handler
        try:
            self.check(service, handler_call_details.invocation_metadata)
        except errors.StatusdError as exc:
            code = errors.grpc_code(exc) or grpc.StatusCode.UNAUTHENTICATED
            metrics.GRPC_HANDLED.labels(method, code.name).inc()
            log.warning("refused a %s call: %s", method, code.name)
            return _refusal(handler, code, str(exc))
        return handler


def _refusal(handler: _Handler, code: grpc.StatusCode, details: str) -> _Handler:
    """A handler of the same kind as ``handler`` that only answers ``code``."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, details)

    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(refuse, response_serializer=handler.response_serializer)

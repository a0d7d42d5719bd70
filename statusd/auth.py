"""Who may call what on statusd: bearer tokens per role, and the start-up rules that keep
statusd closed by default.

Roles (``DLRHUB_<ROLE>_TOKENS``): ``ingest`` (the gateway: IngestReports), ``read``
(StatusService: Get, BatchGet, List, Watch, GetDeliveryStats: everything that only reads),
``register`` (senders: RegisterMessages, which writes, so a read token cannot call it) and
``admin`` (ListQuarantinedItems,
DeleteQuarantinedItems, and IngestReports, so ``dlrhub quarantine replay`` needs one token).
:data:`METHOD_ROLES` is the one table; a method missing from it is refused to every token.
Health and reflection stay open: Kubernetes probes and grpcurl call them without credentials.

Once any token is configured, every call must carry ``authorization: Bearer <token>``: none,
a malformed or an unknown one is UNAUTHENTICATED; a valid token of a role the method does not
admit is PERMISSION_DENIED (a role without tokens is closed to everyone). Tokens are compared
as SHA-256 digests with :func:`hmac.compare_digest`, against every configured token, so the
time taken says nothing about how close a guess was. Codes come from :mod:`statusd.errors`.

:func:`check_exposure` and :func:`signing_keys` run before anything binds: statusd without
tokens, or with the built-in page-token key, serves only loopback, unless
``DLRHUB_STATUSD_INSECURE=true`` says on purpose that it may serve open (logged loudly).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import grpc

from dlrhub.v1 import ingest_service_pb2, status_service_pb2
from dlrhub_common.net import loopback
from dlrhub_common.settings import ConfigError
from statusd import errors
from statusd.cursors import BUILTIN_KEY
from statusd.settings import StatusdSettings

log = logging.getLogger(__name__)

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Role = Literal["ingest", "read", "register", "admin"]
ROLES: tuple[Role, ...] = ("ingest", "read", "register", "admin")

_INGEST = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"]
_STATUS = status_service_pb2.DESCRIPTOR.services_by_name["StatusService"]
#: Full method name → the roles whose tokens may call it.
METHOD_ROLES: dict[str, frozenset[Role]] = {
    f"/{_INGEST.full_name}/IngestReports": frozenset({"ingest", "admin"}),
    f"/{_INGEST.full_name}/ListQuarantinedItems": frozenset({"admin"}),
    f"/{_INGEST.full_name}/DeleteQuarantinedItems": frozenset({"admin"}),
    **{f"/{_STATUS.full_name}/{method.name}": frozenset({"read"}) for method in _STATUS.methods},
    f"/{_STATUS.full_name}/RegisterMessages": frozenset({"register"}),
}
#: Services anyone may call: health (probes) and reflection (grpcurl).
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
#: Shorter tokens and signing keys are refused outside loopback: too easy to guess.
MIN_SECRET_CHARS = 16


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


def role_tokens(settings: StatusdSettings) -> dict[Role, list[str]]:
    """Each role's configured tokens."""
    configured = {
        "ingest": settings.ingest_tokens,
        "read": settings.read_tokens,
        "register": settings.register_tokens,
        "admin": settings.admin_tokens,
    }
    return {role: [t.get_secret_value() for t in configured[role]] for role in ROLES}


class BearerAuth(grpc.aio.ServerInterceptor):
    """Checks bearer tokens per role (see the module docstring)."""

    def __init__(self, tokens: Mapping[Role, Sequence[str]]) -> None:
        """``tokens``: role → its valid tokens (a token may be listed for several roles)."""
        self._digests = {
            role: tuple(_digest(token) for token in tokens.get(role, ())) for role in ROLES
        }

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (then every protected call needs one)."""
        return any(self._digests.values())

    @property
    def roles(self) -> tuple[Role, ...]:
        """The roles that have tokens."""
        return tuple(role for role in ROLES if self._digests[role])

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        """Raises Unauthenticated or PermissionDenied unless the call may reach ``method``."""
        if not self.enabled or method.lstrip("/").partition("/")[0] in OPEN_SERVICES:
            return
        admitted = METHOD_ROLES.get(method, frozenset())
        needs = " or ".join(sorted(admitted)) or "a role no token has"
        token = bearer_token(metadata)
        if token is None:
            raise errors.Unauthenticated(
                f"{method} needs a token of role {needs}: send 'authorization: Bearer <token>' "
                "metadata"
            )
        digest = _digest(token)
        held = {role for role, digests in self._digests.items() if _contains(digests, digest)}
        if held & admitted:
            return
        if held:
            raise errors.PermissionDenied(
                f"a token of role {', '.join(sorted(held))} may not call {method}: "
                f"it needs role {needs}"
            )
        raise errors.Unauthenticated(f"unknown token for {method}")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        try:
            self.check(method, handler_call_details.invocation_metadata)
        except errors.StatusdError as exc:
            code = errors.grpc_code(exc) or grpc.StatusCode.UNAUTHENTICATED
            log.warning("refused a %s call: %s", method.rpartition("/")[2], code.name)
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


def check_exposure(settings: StatusdSettings) -> None:
    """Refuses (ConfigError) to serve beyond loopback without tokens, unless insecure on
    purpose; then, and for short tokens, it says so loudly in the log."""
    host = settings.statusd_host
    tokens = role_tokens(settings)
    if loopback(host):
        return
    if not any(tokens.values()):
        if not settings.statusd_insecure:
            raise ConfigError(
                f"DLRHUB_STATUSD_HOST={host} is not loopback and no tokens are set: anyone who "
                "can reach the port could store reports and delete quarantined items. Set "
                "DLRHUB_INGEST_TOKENS, DLRHUB_READ_TOKENS, DLRHUB_REGISTER_TOKENS and "
                "DLRHUB_ADMIN_TOKENS (the Helm "
                "chart generates them), or DLRHUB_STATUSD_INSECURE=true to serve without "
                "credentials on purpose"
            )
        log.warning(
            "INSECURE: DLRHUB_STATUSD_INSECURE=true and no tokens: anyone who can reach %s "
            "may store, read and delete without credentials",
            settings.grpc_address,
        )
        return
    short = [
        f"DLRHUB_{role.upper()}_TOKENS"
        for role, values in tokens.items()
        if any(len(token) < MIN_SECRET_CHARS for token in values)
    ]
    if short:
        raise ConfigError(
            f"{', '.join(short)}: tokens of statusd on {host} (not loopback) need at least "
            f"{MIN_SECRET_CHARS} characters"
        )


def signing_keys(settings: StatusdSettings) -> tuple[bytes, ...]:
    """The keys that sign page and resume tokens. The built-in key (a checksum anyone can
    reproduce) is used only on loopback; elsewhere keys must be set, or with
    DLRHUB_STATUSD_INSECURE=true a random key of this process is made."""
    keys = tuple(key.get_secret_value().encode() for key in settings.token_signing_keys)
    if loopback(settings.statusd_host):
        return keys or (BUILTIN_KEY,)
    if BUILTIN_KEY in keys or any(len(key) < MIN_SECRET_CHARS for key in keys):
        raise ConfigError(
            f"DLRHUB_TOKEN_SIGNING_KEYS: on {settings.statusd_host} (not loopback) every key "
            f"needs at least {MIN_SECRET_CHARS} characters and must not be the built-in one"
        )
    if keys:
        return keys
    if not settings.statusd_insecure:
        raise ConfigError(
            f"DLRHUB_TOKEN_SIGNING_KEYS: statusd on {settings.statusd_host} (not loopback) needs "
            "a key to sign page and resume tokens (every replica the same; the Helm chart "
            "generates one)"
        )
    log.warning(
        "INSECURE: no DLRHUB_TOKEN_SIGNING_KEYS; page and resume tokens are signed with a "
        "random key and hold on this process only"
    )
    return (secrets.token_bytes(32),)

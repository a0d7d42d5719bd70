"""JSON Web Tokens signed with HMAC (HS256, HS384, HS512), verified with the standard library.

Only what webhook senders use: a compact JWS whose header names an HMAC algorithm from a list
the provider pins. ``alg: none``, RSA and EC algorithms and anything not pinned are refused
before any key is tried; the signature is compared in constant time against every configured
key (rotation); ``exp``, ``nbf`` and ``iat`` are checked against the caller's clock with a
small leeway. Failures raise :class:`TokenError`, whose ``label`` is ``invalid`` or ``stale``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.auth import signatures

#: JOSE algorithm name → hashlib name, for the HMAC algorithms only.
HMAC_ALGORITHMS: dict[str, str] = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
#: Longest token accepted (a webhook's token is a few hundred bytes).
MAX_TOKEN_LENGTH = 8192


class TokenError(Exception):
    """The token is malformed, not genuine (``invalid``) or outside its time (``stale``)."""

    def __init__(self, reason: str, *, label: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """base64url with or without padding; raises TokenError on anything else."""
    if not segment or any(char in segment for char in "+/= \t\r\n"):
        raise TokenError("token segment is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token segment is not base64url") from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TokenError(f"token {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"token {what} is not a JSON object")
    return value


def encode(claims: Mapping[str, Any], key: bytes, algorithm: str = "HS256") -> str:
    """A signed token (for tests and ``dlrhub send-sample``)."""
    header = {"alg": algorithm, "typ": "JWT"}
    signing_input = ".".join(
        b64url_encode(json.dumps(part, separators=(",", ":")).encode("utf-8"))
        for part in (header, dict(claims))
    )
    digest = signatures.hmac_digest(key, signing_input.encode("ascii"), HMAC_ALGORITHMS[algorithm])
    return f"{signing_input}.{b64url_encode(digest)}"


def decode(
    token: str,
    keys: Iterable[bytes],
    *,
    now: float,
    algorithms: Iterable[str] = ("HS256",),
    required: Iterable[str] = (),
    leeway: float = 1.0,
    max_age: float | None = None,
    max_future: float = 300.0,
) -> dict[str, Any]:
    """The claims of a genuine, current token.

    ``algorithms`` pins what the header may name (HMAC ones only); ``required`` lists claims
    that must be present; ``exp`` and ``nbf`` are always checked when present, with
    ``leeway`` seconds of tolerance; with ``max_age``, ``iat`` must be present and at most
    that many seconds old and at most ``max_future`` seconds ahead (clock skew).
    """
    pinned = {name for name in algorithms if name in HMAC_ALGORITHMS}
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token is too long")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise TokenError("token is not a signed JWT (three dot-separated parts)")
    header = _json_object(parts[0], "header")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in pinned:
        raise TokenError(f"token algorithm {str(algorithm)[:16]!r} is not accepted")
    if "crit" in header:
        raise TokenError("token header has critical extensions")
    signature = b64url_decode(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
    hash_name = HMAC_ALGORITHMS[algorithm]
    expected = [signatures.hmac_digest(key, signing_input, hash_name) for key in keys]
    if not expected or not signatures.any_equal(expected, [signature]):
        raise TokenError("token signature does not match")
    claims = _json_object(parts[1], "claims")
    missing = [name for name in required if name not in claims]
    if missing:
        raise TokenError(f"token lacks the claim(s) {', '.join(missing)}")
    _check_times(claims, now=now, leeway=leeway, max_age=max_age, max_future=max_future)
    return claims


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"token claim {name} is not a number")
    return float(value)


def _check_times(
    claims: Mapping[str, Any],
    *,
    now: float,
    leeway: float,
    max_age: float | None,
    max_future: float,
) -> None:
    expires = _number(claims, "exp")
    if expires is not None and now > expires + leeway:
        raise TokenError("token has expired", label="stale")
    not_before = _number(claims, "nbf")
    if not_before is not None and now < not_before - leeway:
        raise TokenError("token is not valid yet", label="stale")
    if max_age is None:
        return
    issued = _number(claims, "iat")
    if issued is None:
        raise TokenError("token lacks the claim iat")
    if now - issued > max_age + leeway:
        raise TokenError(f"token was issued more than {max_age:.0f} s ago", label="stale")
    if issued - now > max(leeway, max_future):
        raise TokenError("token was issued in the future", label="stale")

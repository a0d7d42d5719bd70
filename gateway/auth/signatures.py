"""Signature primitives shared by the provider modules: HMACs, constant-time comparison
against every configured secret, and signed timestamps.

Every comparison of a secret-derived value is constant-time (:func:`hmac.compare_digest`),
every check accepts a list of secrets (rotation), and every verifier has a matching signer so
tests and ``dlrhub send-sample`` can make valid requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence

from pydantic import SecretStr

from gateway.errors import Unauthenticated


def secret_values(secrets: Iterable[SecretStr]) -> list[bytes]:
    """The raw bytes of each configured secret."""
    return [secret.get_secret_value().encode("utf-8") for secret in secrets]


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two strings or byte strings (strings compared as UTF-8)."""
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def hmac_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """HMAC of ``message`` with ``key`` (``algorithm`` is a hashlib name), in one call of
    OpenSSL's one-shot HMAC."""
    return hmac.digest(key, message, algorithm)


def hmac_b64(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    """Standard base64 of an HMAC, without a trailing newline."""
    return base64.b64encode(hmac_digest(key, message, algorithm)).decode("ascii")


def hmac_hex(key: bytes, message: bytes, algorithm: str = "sha256") -> str:
    """Lower-case hex of an HMAC."""
    return hmac_digest(key, message, algorithm).hex()


def hmac_matches(
    keys: Iterable[bytes],
    message: bytes,
    given: Iterable[str],
    *,
    encoding: str = "base64",
    algorithm: str = "sha256",
) -> bool:
    """True when any ``given`` signature is the HMAC of ``message`` under any key, written in
    ``encoding`` (``base64`` or ``hex``, lower case); compared in constant time."""
    encode = hmac_b64 if encoding == "base64" else hmac_hex
    return any_equal([encode(key, message, algorithm) for key in keys], given)


def first_secret(secrets: Sequence[SecretStr], default: str = "") -> str:
    """The first configured secret (what samples sign with), or ``default`` when none is."""
    return secrets[0].get_secret_value() if secrets else default


def any_equal(expected: Iterable[str | bytes], provided: Iterable[str | bytes]) -> bool:
    """True when any provided value equals any expected value; every pair is compared, so
    the time taken does not depend on which one matched."""
    matched = False
    provided = list(provided)
    for want in expected:
        for got in provided:
            matched |= equal(want, got)
    return matched


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_timestamp(
    value: object, *, now: float, max_age: float, max_future: float = 300.0, name: str
) -> int:
    """The Unix-seconds timestamp ``value``; raises Unauthenticated (``stale``) when it is more
    than ``max_age`` seconds old or ``max_future`` seconds ahead (clock skew), ``missing``
    when absent and ``invalid`` when not a number. ``max_age`` 0 turns the age check off."""
    if value is None or value == "":
        raise Unauthenticated(f"{name} is missing", label="missing")
    text = str(value).strip()
    if not text.isdigit() or len(text) > 12:
        raise Unauthenticated(f"{name} is not a Unix timestamp")
    stamp = int(text)
    if max_age and now - stamp > max_age:
        raise Unauthenticated(
            f"{name} is {now - stamp:.0f} s old; at most {max_age:.0f} s is accepted", label="stale"
        )
    if stamp - now > max_future:
        raise Unauthenticated(f"{name} is {stamp - now:.0f} s in the future", label="stale")
    return stamp

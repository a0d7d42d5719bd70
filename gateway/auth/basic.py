"""HTTP Basic credentials (RFC 7617) checked against configured ``user:password`` pairs.

A malformed ``Authorization`` header (another scheme, bad base64, not UTF-8, not ASCII) is a
failed credential, exactly like a wrong password: :func:`check` raises
:class:`~gateway.errors.Unauthenticated` with label ``invalid``, never anything else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from pydantic import SecretStr

from gateway.auth.signatures import any_equal
from gateway.errors import Unauthenticated


def credentials(authorization: str | None) -> str:
    """``user:password`` from an ``Authorization: Basic ...`` header; raises Unauthenticated
    (``missing`` when absent, ``invalid`` when malformed)."""
    if not authorization:
        raise Unauthenticated("missing Authorization header", label="missing")
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthenticated("Authorization is not HTTP Basic")
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError: not ASCII; UnicodeDecodeError too
        raise Unauthenticated("Authorization Basic value is not valid base64") from None


def check(authorization: str | None, accepted: Iterable[SecretStr]) -> None:
    """Raises Unauthenticated unless the header carries one of the ``accepted`` pairs (every
    pair is compared in constant time)."""
    given = credentials(authorization)
    if not any_equal([secret.get_secret_value() for secret in accepted], [given]):
        raise Unauthenticated("Basic credentials do not match")


def authorization(user_password: str) -> str:
    """The ``Authorization`` header value for ``user:password``."""
    return "Basic " + base64.b64encode(user_password.encode("utf-8")).decode("ascii")

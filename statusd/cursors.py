"""Opaque, integrity-checked cursor tokens: List's page tokens and Watch's resume tokens
(bearer tokens, which authenticate callers, are :mod:`statusd.auth`).

A token is ``base64url(version || payload || mac)`` without padding: ``payload`` is compact
JSON, ``mac`` the first 16 bytes of HMAC-SHA256 over the token's kind, version and payload.
The kind (``page``, ``resume``) is part of the MAC, so a page token is no resume token.

The first of ``DLRHUB_TOKEN_SIGNING_KEYS`` signs; every listed key verifies, so a key can be
rotated while tokens signed with the old one are still in use. Every statusd replica of a
deployment needs the same keys. Without keys, a fixed built-in key is used: tokens are then
checksummed (altered or truncated tokens are still refused) but anyone who reads this source
can forge one, so statusd uses it only on loopback (see :func:`statusd.auth.signing_keys`).

Whatever a client sends, decoding ends in :class:`InvalidArgument` or a payload dict: bad
base64, a wrong MAC, bad JSON or UTF-8 under a valid MAC, an oversized token, all the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from statusd.errors import InvalidArgument

VERSION = 1
MAC_BYTES = 16
#: Longer tokens are refused before any decoding (ours are well under 200 characters).
MAX_TOKEN_CHARS = 1024
#: Used when no key is configured: a checksum, not a secret (see the module docstring).
BUILTIN_KEY = b"dlrhub token checksum v1"


class CursorCodec:
    """Signs and checks tokens with the deployment's keys (the first one signs)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        """``keys``: at least one; :func:`statusd.auth.signing_keys` decides which."""
        if not keys:
            raise ValueError("a CursorCodec needs at least one key")
        self.keys = tuple(keys)

    def _mac(self, key: bytes, kind: str, body: bytes) -> bytes:
        return hmac.new(key, kind.encode() + b"\0" + body, hashlib.sha256).digest()[:MAC_BYTES]

    def encode(self, kind: str, payload: dict[str, Any]) -> str:
        body = bytes([VERSION]) + json.dumps(payload, separators=(",", ":")).encode()
        raw = body + self._mac(self.keys[0], kind, body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode(self, kind: str, token: str, field: str) -> dict[str, Any]:
        """The payload of a token made by :meth:`encode` with ``kind``.

        Raises :class:`InvalidArgument` naming ``field`` for anything else.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidArgument(f"{field}: longer than any token this service issues")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"{field}: not a token this service issued") from None
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        valid = False
        for key in self.keys:  # every key is checked, whichever matches
            valid |= hmac.compare_digest(mac, self._mac(key, kind, body))
        if len(raw) <= MAC_BYTES + 1 or not valid:
            raise InvalidArgument(f"{field}: not a valid token (altered, or from another call)")
        if body[0] != VERSION:
            raise InvalidArgument(f"{field}: token version {body[0]} is not supported")
        try:
            payload = json.loads(body[1:])
        except (ValueError, RecursionError):  # bad UTF-8 or JSON (ValueError covers both)
            raise InvalidArgument(f"{field}: not a valid token") from None
        if not isinstance(payload, dict):
            raise InvalidArgument(f"{field}: not a valid token")
        return payload

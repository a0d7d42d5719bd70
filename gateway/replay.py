"""Replay protection for schemes that sign a nonce but no time (Plivo).

A nonce is remembered, with a digest of the request it signed, only once that request was
answered 2xx: a provider retrying after a 503 may resend the very same signed request, and
that retry must go through. The same nonce on a *different* request is refused with 401
(``replayed``) for ``ttl`` seconds. This matters most for Plivo V2, whose signature does not
cover the parameters: without the cache, one captured request could be replayed with altered
parameters. A byte-identical resend of an accepted request is let through: statusd dedupes
it into a counted duplicate that changes nothing, and a provider whose 200 was lost on the
way (a timeout, a killed connection) gets its 200 and stops retrying, instead of a 401 that
it would log as a failure and that would count against its address's authentication-failure
limit.

The cache is per gateway process and bounded (oldest entries dropped first); with several
gateway replicas a replay can still reach another replica, where dedupe in statusd makes an
unaltered replay harmless. Timestamped schemes (Telnyx, Standard Webhooks, Bird) are
protected by their signed time window instead.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.providers.base import InboundRequest


def request_digest(request: InboundRequest) -> bytes:
    """What identifies a request under a nonce: its method, full URL and raw body."""
    head = f"{request.method} {request.url}\n".encode("utf-8", "surrogatepass")
    return hashlib.sha256(head + request.body).digest()


class NonceCache:
    """Keys of accepted requests with their requests' digests, each kept for ``ttl``
    seconds, at most ``max_size``."""

    def __init__(
        self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def seen(self, key: str) -> bytes | None:
        """The digest ``key`` was remembered with less than ``ttl`` seconds ago, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expiry, digest = entry
        if expiry <= self.clock():
            del self._entries[key]
            return None
        return digest

    def remember(self, key: str, digest: bytes) -> None:
        now = self.clock()
        self._entries[key] = (now + self.ttl, digest)
        self._entries.move_to_end(key)
        while self._entries:
            oldest, (expiry, _) = next(iter(self._entries.items()))
            if expiry > now and len(self._entries) <= self.max_size:
                break
            del self._entries[oldest]

    def __len__(self) -> int:
        return len(self._entries)

"""Replay protection for schemes that sign a nonce but no time (Plivo).

A nonce is remembered only once its request was answered 2xx: a provider retrying after a
503 may resend the very same signed request, and that retry must go through. Replaying a
request that was already accepted is refused with 401 (``replayed``) for ``ttl`` seconds.
This matters most for Plivo V2, whose signature does not cover the parameters: without the
cache, one captured request could be replayed with altered parameters.

The cache is per gateway process and bounded (oldest entries dropped first); with several
gateway replicas a replay can still reach another replica, where dedupe in statusd makes an
unaltered replay harmless. Timestamped schemes (Telnyx, Standard Webhooks, Bird) are
protected by their signed time window instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class NonceCache:
    """Keys of accepted requests, each kept for ``ttl`` seconds, at most ``max_size``."""

    def __init__(
        self, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True when ``key`` was remembered less than ``ttl`` seconds ago."""
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self.clock():
            del self._expiry[key]
            return False
        return True

    def remember(self, key: str) -> None:
        now = self.clock()
        self._expiry[key] = now + self.ttl
        self._expiry.move_to_end(key)
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now and len(self._expiry) <= self.max_size:
                break
            del self._expiry[oldest]

    def __len__(self) -> int:
        return len(self._expiry)

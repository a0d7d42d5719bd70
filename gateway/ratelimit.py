"""Request rate limits: token buckets per client IP and per provider account, and one for
clients whose requests fail authentication (:mod:`gateway.guard` decides what each counts).

The failure limit counts failed requests only and throttles only failed requests, so it is
on by default: a genuine provider is never refused by it, even when it shares an address
with a forger. The volume limits are off by default (a provider's burst after a campaign is
legitimate traffic) and meant for gateways exposed to untrusted networks: the per-IP limit
counts every request, before authentication (a flood is refused before it costs anything),
so it is only meaningful when the client address is the real one, that is behind a proxy
only with ``DLRHUB_TRUSTED_PROXIES`` set; the per-account limit counts authenticated
requests only. Every limit answers 429 with ``Retry-After``; providers retry later, so
nothing is lost.

Limits are per gateway process. Memory is bounded: at most ``max_keys`` buckets per limiter,
least recently used dropped first. The client IP is the TCP peer, or, when the peer is a
trusted proxy, the right-most untrusted address of ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Takes a token; returns 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Limiter:
    """Token buckets by key, bounded in number (least recently used dropped)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> int:
        """0 when ``key`` may proceed, else whole seconds to wait (for ``Retry-After``)."""
        if not self.enabled:
            return 0
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now)
        return 0 if wait == 0 else max(1, math.ceil(wait))

    def __len__(self) -> int:
        """The number of buckets held."""
        return len(self._buckets)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses; raises ValueError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR") from None
    return tuple(networks)


def client_ip(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the peer, or behind trusted proxies the right-most address in
    ``X-Forwarded-For`` that is not itself a trusted proxy."""
    if not trusted or not _in(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)

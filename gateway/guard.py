"""The gateway's per-request protections, in the order a request meets them: who the client
is and whether it is over its volume limit (see ratelimit.py); once the request is verified
and parsed, whether it carries too many items or a signed nonce already accepted on another
request; whether a client whose request failed authentication keeps failing; and whether an
authenticated account is over its volume limit.

Authentication is never the victim of rate limiting: every request is verified before the
authentication-failure limit or the per-account limit is consulted (verification is cheap,
and it is the only way to tell a genuine request from a forged one). A request that
authenticates is never refused by the failure limit, however many forgeries came from its
address (behind an ingress without trusted proxies, every provider shares one address). Only
failing requests are throttled: past ``DLRHUB_AUTH_FAILURE_LIMIT_PER_MINUTE`` failures a
minute from one client, its failing requests get 429 with ``Retry-After`` instead of 401
(the reason names the verification failure too). The per-account limit counts authenticated
requests only, so forged traffic cannot spend a real account's budget, and an unknown
provider or account (404 before any limit) never allocates limiter state.

Replay protection, for schemes that sign a nonce but no time (Plivo): every nonce a request
carries is remembered, with a digest of the request, once the request authenticated and
before it is forwarded to statusd, so a second request with the same nonce is refused with
401 (``replayed``) for ``DLRHUB_NONCE_TTL_SECONDS`` even while the first still waits for its
commit. The very request that was recorded may come again: a provider retrying after a 503,
or after a 200 lost on the way (a timeout, a killed connection), resends the same signed
request; statusd dedupes it into a counted duplicate that changes nothing, and the provider
gets its answer and stops retrying, instead of a 401 that it would log as a failure and that
would count against its address's authentication-failure limit. This matters most for Plivo
V2 (off unless ``DLRHUB_PLIVO_ALLOW_V2``), whose signature does not cover the parameters:
without the cache, one captured request could be replayed with altered parameters.

The nonce cache is per gateway process and bounded (oldest entries dropped first); with
several gateway replicas, or after a restart, a replay can reach a gateway that never saw the
original: dedupe in statusd makes an unaltered replay harmless, but a V2 request with altered
parameters is then accepted, which is why V2 is off by default. Timestamped schemes (Telnyx,
Standard Webhooks, Bird) are protected by their signed time window instead.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

from sanic import Request

from gateway.errors import HeadersTooLarge, PayloadTooLarge, RateLimited, Unauthenticated
from gateway.providers import InboundRequest, Parsed
from gateway.ratelimit import Limiter, client_ip, parse_networks
from gateway.settings import GatewaySettings


class Guard:
    """Rate limits, the authentication-failure limit, the items limit and the nonce cache of
    one gateway."""

    def __init__(self, settings: GatewaySettings) -> None:
        burst = settings.rate_limit_burst_seconds
        self.trusted = parse_networks(settings.trusted_proxies)
        self.max_headers = settings.max_headers
        self.max_items = settings.max_items_per_request
        self.per_ip = Limiter(settings.rate_limit_per_ip, settings.rate_limit_per_ip * burst)
        self.per_account = Limiter(
            settings.rate_limit_per_account, settings.rate_limit_per_account * burst
        )
        per_minute = settings.auth_failure_limit_per_minute
        self.auth_failures = Limiter(per_minute / 60, per_minute)
        self.nonces = NonceCache(settings.nonce_ttl_seconds, settings.nonce_cache_size)

    def client(self, request: Request) -> str:
        if request.conn_info:
            peer = request.conn_info.client_ip
        else:  # a request refused before Sanic filled conn_info in (headers too large)
            peername = request.transport.get_extra_info("peername") if request.transport else None
            peer = str(peername[0]) if peername else ""
        return client_ip(peer, request.headers.get("x-forwarded-for"), self.trusted)

    def admit(self, request: Request, client: str) -> None:
        """Raises HeadersTooLarge or RateLimited (per client IP, counting every request)
        before any work is done on the request."""
        if len(request.headers) > self.max_headers:
            raise HeadersTooLarge(f"more than {self.max_headers} request headers")
        wait = self.per_ip.check(client)
        if wait:
            raise RateLimited("too many requests from this client", retry_after=wait)

    def failed_authentication(self, client: str, error: Unauthenticated) -> None:
        """Counts a failed authentication; raises RateLimited (caused by ``error``) instead
        when the client is over the failure limit."""
        wait = self.auth_failures.check(client)
        if wait:
            raise RateLimited(
                f"too many failed authentications from this client; this one: {error.reason}",
                retry_after=wait,
            ) from error

    def authenticated(self, provider: str, account: str) -> None:
        """Raises RateLimited when an authenticated account is over its volume limit; only
        configured accounts get here, so their number bounds the buckets."""
        wait = self.per_account.check(f"{provider}/{account}")
        if wait:
            raise RateLimited(f"too many requests for this {provider} account", retry_after=wait)

    def check_parsed(self, parsed: Parsed, request: InboundRequest) -> None:
        """Raises Unauthenticated (``replayed``) when any nonce the request carries was
        recorded for another request (the very request it was recorded for may come again,
        see the module docstring), PayloadTooLarge when it carries more items than allowed;
        otherwise records its nonces, before the request is forwarded."""
        keys = parsed.replay_keys if self.nonces.ttl else ()
        signed = digest(request) if keys else b""
        for key in keys:
            recorded = self.nonces.seen(key)
            if recorded is not None and not hmac.compare_digest(recorded, signed):
                raise Unauthenticated(
                    "this signed nonce was already accepted on another request", label="replayed"
                )
        if len(parsed.reports) + len(parsed.quarantined) > self.max_items:
            raise PayloadTooLarge(f"more than {self.max_items} reports in one request")
        if self.nonces.max_size:
            for key in keys:
                self.nonces.remember(key, signed)


def digest(request: InboundRequest) -> bytes:
    """What identifies a request under a nonce: its method, full URL and raw body."""
    head = f"{request.method} {request.url}\n".encode("utf-8", "surrogatepass")
    return hashlib.sha256(head + request.body).digest()


class NonceCache:
    """Keys of authenticated requests with their requests' digests, each kept for ``ttl``
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

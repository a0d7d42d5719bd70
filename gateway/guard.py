"""The gateway's per-request protections, in the order a request meets them: who the client
is, whether it or the account is over a rate limit, whether it keeps failing authentication,
and whether its signed nonce was already accepted. See ratelimit.py and replay.py."""

from __future__ import annotations

import hmac

from sanic import Request

from gateway.errors import HeadersTooLarge, RateLimited, Unauthenticated
from gateway.ratelimit import Limiter, client_ip, parse_networks
from gateway.replay import NonceCache
from gateway.settings import GatewaySettings


class Guard:
    """Rate limits, the authentication-failure limit and the nonce cache of one gateway."""

    def __init__(self, settings: GatewaySettings) -> None:
        burst = settings.rate_limit_burst_seconds
        self.trusted = parse_networks(settings.trusted_proxies)
        self.max_headers = settings.max_headers
        self.per_ip = Limiter(settings.rate_limit_per_ip, settings.rate_limit_per_ip * burst)
        self.per_account = Limiter(
            settings.rate_limit_per_account, settings.rate_limit_per_account * burst
        )
        per_minute = settings.auth_failure_limit_per_minute
        self.auth_failures = Limiter(per_minute / 60, per_minute)
        self.nonces = NonceCache(settings.nonce_ttl_seconds, settings.nonce_cache_size)

    def client(self, request: Request) -> str:
        return client_ip(
            request.conn_info.client_ip if request.conn_info else "",
            request.headers.get("x-forwarded-for"),
            self.trusted,
        )

    def admit(self, request: Request, client: str, provider: str, account: str) -> None:
        """Raises RateLimited or HeadersTooLarge before any work is done on the request."""
        if len(request.headers) > self.max_headers:
            raise HeadersTooLarge(f"more than {self.max_headers} request headers")
        wait = self.auth_failures.blocked(client)
        if wait:
            raise RateLimited("too many failed authentications from this client", retry_after=wait)
        wait = self.per_ip.check(client)
        if wait:
            raise RateLimited("too many requests from this client", retry_after=wait)
        wait = self.per_account.check(f"{provider}/{account}")
        if wait:
            raise RateLimited(f"too many requests for {provider} account", retry_after=wait)

    def failed_authentication(self, client: str) -> None:
        self.auth_failures.check(client)

    def check_replay(self, key: str, digest: bytes) -> None:
        """Raises Unauthenticated when the nonce ``key`` was accepted on another request; the
        very request that was accepted may come again (a provider's retry, see replay.py)."""
        if not (key and self.nonces.ttl):
            return
        accepted = self.nonces.seen(key)
        if accepted is not None and not hmac.compare_digest(accepted, digest):
            raise Unauthenticated(
                "this signed nonce was already accepted on another request", label="replayed"
            )

    def accepted(self, key: str, digest: bytes) -> None:
        if key and self.nonces.ttl and self.nonces.max_size:
            self.nonces.remember(key, digest)

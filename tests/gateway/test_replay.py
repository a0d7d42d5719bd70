"""The nonce cache: remembered for a while, bounded, forgotten after its time; the digest
that tells a provider's resend of the same request from another request under its nonce."""

from __future__ import annotations

from gateway.guard import NonceCache
from gateway.guard import digest as request_digest
from gateway.providers.base import build_request


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembered_until_the_ttl() -> None:
    clock = Clock()
    cache = NonceCache(ttl=10, max_size=100, clock=clock)
    assert cache.seen("n1") is None
    cache.remember("n1", b"d1")
    assert cache.seen("n1") == b"d1"
    clock.now = 9.9
    assert cache.seen("n1") == b"d1"
    clock.now = 10.1
    assert cache.seen("n1") is None


def test_bounded_oldest_dropped_first() -> None:
    cache = NonceCache(ttl=1000, max_size=3, clock=Clock())
    for nonce in ("a", "b", "c", "d"):
        cache.remember(nonce, nonce.encode())
    assert len(cache) == 3
    assert cache.seen("a") is None
    assert cache.seen("d") == b"d"


def test_the_digest_covers_method_url_and_body() -> None:
    def digest(method: str, url: str, body: bytes) -> bytes:
        return request_digest(build_request(method, url, [], body))

    same = digest("POST", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    assert same == digest("POST", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    assert same != digest("POST", "https://x.example/webhooks/plivo?a=2", b"Status=sent")
    assert same != digest("POST", "https://x.example/webhooks/plivo?a=1", b"Status=delivered")
    assert same != digest("GET", "https://x.example/webhooks/plivo?a=1", b"Status=sent")
    # a path Sanic decoded into a lone surrogate is hashed, not an encoding error
    assert len(digest("POST", "https://x.example/webhooks/\udcff", b"")) == 32

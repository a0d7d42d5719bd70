"""The nonce cache: remembered for a while, bounded, forgotten after its time."""

from __future__ import annotations

from gateway.replay import NonceCache


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_remembered_until_the_ttl() -> None:
    clock = Clock()
    cache = NonceCache(ttl=10, max_size=100, clock=clock)
    assert not cache.seen("n1")
    cache.remember("n1")
    assert cache.seen("n1")
    clock.now = 9.9
    assert cache.seen("n1")
    clock.now = 10.1
    assert not cache.seen("n1")


def test_bounded_oldest_dropped_first() -> None:
    cache = NonceCache(ttl=1000, max_size=3, clock=Clock())
    for nonce in ("a", "b", "c", "d"):
        cache.remember(nonce)
    assert len(cache) == 3
    assert not cache.seen("a")
    assert cache.seen("d")

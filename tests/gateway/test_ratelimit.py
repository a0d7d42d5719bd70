"""Token buckets, bounded memory, and the client address behind trusted proxies."""

from __future__ import annotations

import pytest

from gateway.ratelimit import Limiter, client_ip, parse_networks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_asks_to_wait() -> None:
    clock = Clock()
    limiter = Limiter(rate=2, burst=4, clock=clock)
    assert [limiter.check("a") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.check("a") == 1
    assert limiter.check("b") == 0  # keys are independent
    clock.now += 0.5
    assert limiter.check("a") == 0
    assert limiter.check("a") >= 1


def test_zero_rate_is_no_limit() -> None:
    limiter = Limiter(rate=0, burst=0)
    assert not limiter.enabled
    assert all(limiter.check("a") == 0 for _ in range(1000))


def test_memory_is_bounded_least_recently_used_dropped() -> None:
    limiter = Limiter(rate=1, burst=1, max_keys=10, clock=Clock())
    assert limiter.check("first") == 0
    assert limiter.check("first") == 1  # its one token is spent
    for index in range(1000):
        limiter.check(f"10.0.0.{index}")
    assert len(limiter) == 10
    assert limiter.check("10.0.0.999") == 1  # recent keys are still limited
    assert limiter.check("first") == 0  # forgotten: its bucket was dropped


TRUSTED = parse_networks(["10.0.0.0/8", "192.168.1.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # untrusted peer: header ignored
        ("10.1.2.3", "1.2.3.4", "1.2.3.4"),
        ("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"),  # right-most untrusted hop
        ("10.1.2.3", "not-an-ip", "10.1.2.3"),
        ("192.168.1.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match="nope"):
        parse_networks(["10.0.0.0/8", "nope"])

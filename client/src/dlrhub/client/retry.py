"""Backoff for retries and reconnects: exponential, capped, with jitter."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

#: Codes a unary call retries: statusd restarting, the store briefly down.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
#: Codes after which a Watch reconnects and resumes (RESOURCE_EXHAUSTED: it fell behind).
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries of a unary call in all; delays grow from ``initial`` by
    ``multiplier`` up to ``maximum``, each shortened at random by up to ``jitter``."""

    attempts: int = 5
    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delays(self) -> Iterator[float]:
        """An endless series of delays."""
        delay = self.initial
        while True:
            yield delay * (1 - self.jitter * random.random())  # noqa: S311 - not for secrets
            delay = min(self.maximum, delay * self.multiplier)

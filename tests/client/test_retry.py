"""Backoff: delays grow by the multiplier up to the maximum, each shortened by the jitter;
which codes a call retries and a Watch resumes after."""

from __future__ import annotations

from itertools import islice

import grpc

from dlrhub.client.retry import RESUMABLE, RETRYABLE, Backoff


def test_delays_grow_and_are_capped_without_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)
    assert list(islice(backoff.delays(), 7)) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_jitter_only_shortens_a_delay() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.25)
    delays = list(islice(backoff.delays(), 200))
    assert all(0.75 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 1


def test_defaults() -> None:
    backoff = Backoff()
    assert backoff.attempts == 5
    assert next(backoff.delays()) <= backoff.initial


def test_retryable_and_resumable_codes() -> None:
    assert {grpc.StatusCode.UNAVAILABLE} == RETRYABLE
    assert {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED} == RESUMABLE
    assert grpc.StatusCode.INVALID_ARGUMENT not in RESUMABLE

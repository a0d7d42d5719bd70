"""The watch-load clients, run briefly against a real statusd: ingest calls at a fixed rate
and time each answer; every call is stored."""

from __future__ import annotations

from bench.watch_load import ingest
from statusd.server import Statusd


async def test_ingest_times_every_call(statusd: Statusd) -> None:
    found = await ingest(f"127.0.0.1:{statusd.port}", rate=50, duration=0.2)
    assert found["calls"] == 10
    assert found["errors"] == {}
    latencies = found["latencies"]
    assert isinstance(latencies, list)
    assert len(latencies) == 10
    assert all(latency > 0 for latency in latencies)

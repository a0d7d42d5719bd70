"""The GetMessageStatus load client, run briefly against a real statusd: it counts calls and
errors and records a latency per successful call."""

from __future__ import annotations

from bench.grpc_load import run
from bench.scenarios import seed
from statusd.server import Statusd


async def test_counts_calls_and_errors(statusd: Statusd) -> None:
    target = f"127.0.0.1:{statusd.port}"
    await seed(target, 2)
    found = await run(target, ["seed-0", "seed-1"], "infobip", duration=0.3, concurrency=2)
    calls, latencies = found["calls"], found["latencies"]
    assert found["errors"] == 0
    assert isinstance(calls, int)
    assert calls > 0
    assert isinstance(latencies, list)
    assert len(latencies) == calls
    missing = await run(target, ["nope"], "infobip", duration=0.2, concurrency=1)
    assert missing["calls"] == 0
    assert isinstance(missing["errors"], int)
    assert missing["errors"] > 0

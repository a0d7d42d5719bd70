"""Watch fan-out, run small against a real gateway and statusd: every subscriber receives
every report sent through the gateway, with a latency for each delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import requests as generated
from bench.watch import run
from tests.helpers.servers import BackgroundStack


def test_every_subscriber_gets_every_report(tmp_path: Path) -> None:
    requests = list(generated.infobip("watch", 3, 1))
    bodies = [request.body.encode() for request in requests]
    with BackgroundStack(tmp_path, generated.ENV) as stack:
        assert stack.statusd is not None
        outcome = asyncio.run(
            run(
                f"127.0.0.1:{stack.statusd.port}",
                stack.url,
                requests[0].headers,
                bodies,
                subscribers=2,
                rate=20,
            )
        )
    assert outcome["deliveries"] == outcome["expected"] == 6
    latencies = outcome["latencies"]
    assert isinstance(latencies, list)
    assert len(latencies) == 6
    assert all(0 <= latency < 30 for latency in latencies)

"""The ceiling server answers like the gateway (200, the request id echoed), so the same wrk
script drives both."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from bench.processes import Process, free_port, http_ok


def test_ceiling_echoes_the_request_id(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceiling", str(port)]
    ceiling = Process("ceiling", argv, {}, tmp_path / "ceiling.log")
    try:
        ceiling.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/infobip",
            content=b"{}",
            headers={"X-Request-Id": "r-42"},
            timeout=10,
        )
    finally:
        ceiling.stop()
    assert answer.status_code == 200
    assert answer.json() == {"request_id": "r-42"}

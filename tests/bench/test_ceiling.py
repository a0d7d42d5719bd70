"""Covers bench/ceiling.py and bench/hop.py: the ceiling server answers like the gateway
(200, the request id echoed), so the same wrk script drives both; as the transport floor it
answers only after bench.hop confirmed the report."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from bench.processes import Process, free_port, http_ok, port_open


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


def test_the_transport_floor_answers_after_the_hop_confirmed(tmp_path: Path) -> None:
    """Given the hop's port, each webhook's report travels one coalesced IngestReports call to
    bench.hop (which counts it stored) before the 200; with the hop gone it cannot answer."""
    hop_port, port = free_port(), free_port()
    hop = Process(
        "hop", [sys.executable, "-m", "bench.hop", str(hop_port)], {}, tmp_path / "hop.log"
    )
    argv = [sys.executable, "-m", "bench.ceiling", str(port), str(hop_port)]
    floor = Process("floor", argv, {}, tmp_path / "floor.log")
    body = b'{"results":[{"messageId":"m-1"}]}'
    url = f"http://127.0.0.1:{port}/webhooks/infobip"
    try:
        hop.wait_until(lambda: port_open(hop_port))
        floor.wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"))
        answer = httpx.post(url, content=body, headers={"X-Request-Id": "r-7"}, timeout=10)
        hop.stop()
        without_hop = httpx.post(url, content=body, timeout=15)
    finally:
        floor.stop()
        hop.stop()
    assert answer.status_code == 200
    assert answer.json() == {"request_id": "r-7"}
    assert without_hop.status_code == 500  # the call failed: no answer of 200 without the hop

"""The flood and stall measurements, run small against real processes: they report figures,
answer every client and stop every process they started."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import orjson
import pytest

from bench.flood import hostile_bodies
from gateway.errors import Malformed, PayloadTooLarge
from gateway.providers.json_shape import check_json_shape


def run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.flood", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_hostile_bodies_are_refused_or_shallow() -> None:
    bodies = hostile_bodies(64 * 1024)
    assert all(60 * 1024 < len(body) <= 64 * 1024 for body in bodies.values())
    assert all(orjson.loads(body) for body in bodies.values())  # valid JSON, all of them
    for name in ("deep-first-then-flat", "interleaved-deep-then-flat"):
        with pytest.raises(Malformed):
            check_json_shape(bodies[name])
    with pytest.raises(PayloadTooLarge):
        check_json_shape(hostile_bodies(1024 * 1024)["flat-arrays"])
    check_json_shape(bodies["escaped-strings"])


def test_a_small_flood_reports_memory_and_answers() -> None:
    result = run(
        "flood",
        *("--webhooks", "3", "--items", "4", "--slow", "2", "--body-bytes", "65536"),
        *("--settle-seconds", "0.2", "--request-timeout", "1"),
    )
    rss = result["rss_mib"]
    assert 0 < rss["before"] <= rss["peak"]
    assert rss["after"] > 0
    assert sum(result["webhook_answers"].values()) == 3
    assert result["slow_upload_answers"] == {"408": 2}


def test_stall_reports_each_hostile_body() -> None:
    result = run("stall", "--body-bytes", "65536")
    assert set(result) == {"mode", *hostile_bodies(65536)}
    assert result["deep-first-then-flat"]["status"] == 400
    assert all(
        figures["worst_healthz_ms"] > 0 for name, figures in result.items() if name != "mode"
    )

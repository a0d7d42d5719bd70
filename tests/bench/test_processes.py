"""The benchmark's processes: readiness, CPU seconds and peak memory read from /proc, stop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.processes import Process, Usage

HOLD_MEMORY = (
    "import time; block = bytearray(64 * 1024 * 1024); print('ready', flush=True); time.sleep(60)"
)


def test_usage_of_a_process(tmp_path: Path) -> None:
    log = tmp_path / "hold.log"
    process = Process("hold", [sys.executable, "-c", HOLD_MEMORY], {}, log)
    try:
        process.wait_until(lambda: "ready" in log.read_text())
        usage = Usage([process])
        figures = usage.finish()["hold"]
        assert figures["cpu_seconds"] >= 0
        assert figures["peak_rss_mib"] >= 64
        assert process.cpu_seconds() > 0
    finally:
        process.stop()
    assert process.popen.returncode is not None


def test_wait_until_fails_when_the_process_exits(tmp_path: Path) -> None:
    process = Process("quits", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "q")
    with pytest.raises(RuntimeError, match="quits exited with code 3"):
        process.wait_until(lambda: False)


def test_wait_until_times_out(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    process = Process("slow", argv, {}, tmp_path / "slow.log")
    try:
        with pytest.raises(RuntimeError, match="slow did not become ready"):
            process.wait_until(lambda: False, timeout=0.3)
    finally:
        process.stop()

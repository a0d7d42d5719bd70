"""The benchmark's processes: readiness, CPU seconds and peak memory read from /proc, stop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.processes import TICKS, Process, Usage, cpu_seconds, per_unit, stat_cpu_seconds

HOLD_MEMORY = (
    "import time; block = bytearray(64 * 1024 * 1024); print('ready', flush=True); time.sleep(60)"
)
#: Burns CPU until a quarter of a CPU second is used, then says so and sleeps.
SPIN = (
    "import time\nwhile time.process_time() < 0.25: pass\nprint('spun', flush=True); time.sleep(60)"
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


def test_cpu_seconds_of_a_real_child_that_spins(tmp_path: Path) -> None:
    log = tmp_path / "spin.log"
    process = Process("spin", [sys.executable, "-c", SPIN], {}, log)
    try:
        process.wait_until(lambda: "spun" in log.read_text(), timeout=30)
        used = cpu_seconds(process.pid)
        assert 0.2 <= used < 5  # /proc counts whole clock ticks
        assert process.cpu_seconds() >= used
    finally:
        process.stop()


def test_stat_fields_are_counted_after_the_command_name() -> None:
    # The command name may hold spaces and ')'; utime and stime are fields 14 and 15.
    rest = " ".join(["S", *["0"] * 10, str(3 * TICKS), str(TICKS), "7", "8"])
    assert stat_cpu_seconds(f"123 (odd) name) {rest}") == 4.0


def test_per_unit_adds_microseconds_per_request_and_per_report() -> None:
    usage = {"gateway": {"cpu_seconds": 2.0}, "statusd": {"cpu_seconds": 0.5}}
    per_unit(usage, requests=20_000, reports=1_000_000)
    assert usage["gateway"]["cpu_us_per_request"] == 100.0
    assert usage["gateway"]["cpu_us_per_report"] == 2.0
    assert usage["statusd"]["cpu_us_per_request"] == 25.0
    per_unit(usage := {"idle": {"cpu_seconds": 1.0}}, requests=0, reports=0)
    assert usage == {"idle": {"cpu_seconds": 1.0}}

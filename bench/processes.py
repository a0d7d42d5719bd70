"""The processes under test, with the CPU time and peak memory each one used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dlrhub_common.net import free_port, http_ok, port_open

BIN = Path(sys.executable).parent
__all__ = [
    "BIN",
    "Process",
    "Usage",
    "cpu_seconds",
    "free_port",
    "http_ok",
    "per_unit",
    "port_open",
    "stat_cpu_seconds",
]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat utime + stime)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def stat_cpu_seconds(stat: str) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds; the command name (in parentheses)
    may itself hold spaces and parentheses, so fields are counted after the last ')'."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def per_unit(usage: dict[str, dict[str, float]], requests: int, reports: int) -> None:
    """Adds each process's CPU microseconds per request and per report to ``usage``."""
    for figures in usage.values():
        seconds = figures.get("cpu_seconds", 0.0)
        if requests:
            figures["cpu_us_per_request"] = round(seconds * 1e6 / requests, 1)
        if reports:
            figures["cpu_us_per_report"] = round(seconds * 1e6 / reports, 1)


class Process:
    """A started process; ``cpu_seconds`` and ``peak_rss_mib`` read /proc."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def reset_peak(self) -> None:
        """Starts a new peak-RSS measurement (Linux: write 5 to clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Usage:
    """CPU seconds and peak RSS of some processes over one scenario."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self.cpu_start = {process.name: process.cpu_seconds() for process in processes}
        for process in processes:
            process.reset_peak()

    def finish(self) -> dict[str, dict[str, float]]:
        return {
            process.name: {
                "cpu_seconds": round(process.cpu_seconds() - self.cpu_start[process.name], 3),
                "peak_rss_mib": round(process.peak_rss_mib(), 1),
            }
            for process in self.processes
        }

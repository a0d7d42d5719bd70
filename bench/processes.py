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
__all__ = ["BIN", "Process", "Usage", "free_port", "http_ok", "port_open"]
TICKS = os.sysconf("SC_CLK_TCK")


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
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

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
                "cpu_seconds": round(process.cpu_seconds() - self.cpu_start[process.name], 2),
                "peak_rss_mib": round(process.peak_rss_mib(), 1),
            }
            for process in self.processes
        }

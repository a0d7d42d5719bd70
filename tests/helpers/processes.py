"""statusd and the gateway as real processes on loopback ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from dlrhub_common.net import free_port, http_ok, port_open

BIN = Path(sys.executable).parent
__all__ = [
    "BIN",
    "CREDENTIALS",
    "INFOBIP_BASIC_AUTH",
    "PLIVO_AUTH_TOKEN",
    "PUBLIC_URL",
    "Service",
    "Stack",
    "free_port",
    "http_ok",
    "last_line",
    "lock_database",
    "port_open",
    "run_to_end",
]

#: The public URL and provider credentials an end-to-end stack is configured with.
PUBLIC_URL = "https://dlr.example.com"
INFOBIP_BASIC_AUTH = "acme:s3cret"
PLIVO_AUTH_TOKEN = "plivo-token"
CREDENTIALS = {
    "DLRHUB_PUBLIC_URL": PUBLIC_URL,
    "DLRHUB_INFOBIP_BASIC_AUTH": INFOBIP_BASIC_AUTH,
    "DLRHUB_PLIVO_AUTH_TOKEN": PLIVO_AUTH_TOKEN,
}

LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("ROLLBACK")
"""


class Service:
    """One dlrhub process; its output goes to a log file in the test's directory."""

    def __init__(self, command: str, env: Mapping[str, str], log: Path) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / self.command)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
            )
        return self

    def wait_until(self, ready: object, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.command} exited: {self.log.read_text()[-2000:]}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.command} not ready: {self.log.read_text()[-2000:]}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signals the process and waits; returns its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Stack:
    """statusd + gateway processes sharing one environment."""

    def __init__(self, tmp_path: Path, env: Mapping[str, str]) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.env = {
            "DLRHUB_STATUSD_PORT": str(self.grpc_port),
            "DLRHUB_STATUSD_METRICS_PORT": str(free_port()),
            "DLRHUB_GATEWAY_PORT": str(self.http_port),
            "DLRHUB_SQLITE_PATH": str(tmp_path / "dlrhub.sqlite3"),
            "DLRHUB_SHUTDOWN_GRACE_SECONDS": "5",
            **env,
        }
        self.statusd = Service("dlrhub-statusd", self.env, tmp_path / "statusd.log")
        self.gateway = Service("dlrhub-gateway", self.env, tmp_path / "gateway.log")
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.target = f"127.0.0.1:{self.grpc_port}"

    def start_statusd(self) -> None:
        self.statusd.start().wait_until(lambda: port_open(self.grpc_port))

    def start_gateway(self) -> None:
        self.gateway.start().wait_until(lambda: http_ok(self.url + "/healthz"))

    def start(self) -> Stack:
        self.start_statusd()
        self.start_gateway()
        return self

    def stop(self) -> None:
        for service in (self.gateway, self.statusd):
            if service.process is not None and service.process.poll() is None:
                service.stop()


def lock_database(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holds an exclusive lock on the SQLite store for ``seconds``."""
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None
    assert locker.stdout.readline().strip() == "locked"
    return locker


def run_to_end(command: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs a dlrhub process that is expected to stop by itself (a start-up that fails)."""
    return subprocess.run(
        [str(BIN / command)],
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a process that could not start ends with: exit code 1, no traceback."""
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]

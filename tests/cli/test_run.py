"""``dlrhub run`` on a fresh directory: generated credentials, both processes, a signed
sample stored and read back, Ctrl-C stops both, credentials reused next time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.processes import BIN, free_port

pytestmark = pytest.mark.e2e


def start(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [str(BIN / "dlrhub"), "run"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if "Ctrl-C stops both." in line or (not line and process.poll() is not None):
            break
    return process, "".join(seen)


def dlrhub(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dlrhub"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_run_sample_read_stop_and_reuse(tmp_path: Path) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")},
        "DLRHUB_GATEWAY_PORT": str(free_port()),
        "DLRHUB_STATUSD_PORT": str(free_port()),
        "DLRHUB_STATUSD_METRICS_PORT": str(free_port()),
    }
    process, banner = start(tmp_path, env)
    try:
        assert "dlrhub is running." in banner, banner
        assert f"http://127.0.0.1:{env['DLRHUB_GATEWAY_PORT']}/webhooks/infobip" in banner
        assert "send-sample infobip" in banner
        dev_env = (tmp_path / "var" / "dev.env").read_text()
        assert "DLRHUB_INFOBIP_BASIC_AUTH=dev:" in dev_env
        assert (tmp_path / "var" / "dev.env").stat().st_mode & 0o077 == 0
        assert "/webhooks/aws-sns" in banner
        # The seed providers and those whose development keys `dlrhub run` generates.
        for provider in ("infobip", "plivo", "telnyx", "aws-sns", "sinch"):
            sent = dlrhub(
                tmp_path, env, "send-sample", provider, "--message-id", f"{provider}-demo"
            )
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert "HTTP 200" in sent.stdout
            message_id = sent.stdout.split("for message ", 1)[1].split(" ", 1)[0]
            read = dlrhub(tmp_path, env, "status", "get", provider, message_id, "--full")
            assert read.returncode == 0, read.stderr
            assert f"{message_id}: DELIVERED" in read.stdout
        missing = dlrhub(tmp_path, env, "status", "get", "infobip", "nope")
        assert missing.returncode == 1
        assert "NOT_FOUND" in missing.stderr
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "dlrhub stopped." in output
    again, _ = start(tmp_path, env)
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=30)
    assert (tmp_path / "var" / "dev.env").read_text() == dev_env


def test_run_refuses_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")},
            "DLRHUB_GATEWAY_PORT": str(busy.getsockname()[1]),
            "DLRHUB_STATUSD_PORT": str(free_port()),
        }
        result = dlrhub(tmp_path, env, "run")
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert "DLRHUB_GATEWAY_PORT" in result.stderr

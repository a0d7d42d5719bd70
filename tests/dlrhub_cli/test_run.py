"""``dlrhub run`` on a fresh directory: generated credentials, both processes, a signed
sample stored and read back, Ctrl-C stops both, credentials reused next time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from dlrhub_cli import run
from dlrhub_common.settings import load
from gateway.settings import GatewayConfig, GatewaySettings
from statusd.settings import StatusdSettings
from tests.helpers.processes import BIN, free_port


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


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A private environment without DLRHUB_ variables, in a fresh working directory."""
    copy = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    monkeypatch.setattr(os, "environ", copy)
    monkeypatch.chdir(tmp_path)
    return copy


def test_insecure_providers_stay_unverified_with_development_credentials(
    environ: dict[str, str], tmp_path: Path
) -> None:
    environ["DLRHUB_INSECURE_PROVIDERS"] = "infobip"
    assembled = run.environment()
    assert assembled.using_dev
    assert (tmp_path / "var" / "dev.env").exists()
    assert environ["DLRHUB_INFOBIP_BASIC_AUTH"].startswith("dev:")  # credentials exist ...
    assert assembled.gateway.insecure_providers == ("infobip",)
    endpoints = GatewayConfig.load(assembled.gateway).endpoints
    assert endpoints[("infobip", "")].credentials.configured()
    assert endpoints[("infobip", "")].insecure  # ... and are not checked
    assert not endpoints[("plivo", "")].insecure
    lines = run.insecure_lines(assembled.gateway.insecure_providers, assembled.using_dev)
    assert "INSECURE: infobip accept webhooks WITHOUT verification" in lines[1]
    assert "development credentials are not checked" in lines[1]
    assert "unset DLRHUB_INSECURE_PROVIDERS" in lines[2]
    assert run.insecure_lines((), assembled.using_dev) == []


def test_the_environment_refuses_insecure_providers_beyond_loopback(
    environ: dict[str, str],
) -> None:
    environ["DLRHUB_INSECURE_PROVIDERS"] = "infobip"
    environ["DLRHUB_GATEWAY_HOST"] = "0.0.0.0"  # noqa: S104
    with pytest.raises(run.RunError, match="bind a loopback address"):
        run.environment()


@pytest.mark.e2e
def test_run_accepts_unsigned_samples_of_insecure_providers(tmp_path: Path) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")},
        "DLRHUB_GATEWAY_PORT": str(free_port()),
        "DLRHUB_STATUSD_PORT": str(free_port()),
        "DLRHUB_STATUSD_METRICS_PORT": str(free_port()),
        "DLRHUB_INSECURE_PROVIDERS": "infobip",
    }
    process, banner = start(tmp_path, env)
    try:
        assert "INSECURE: infobip accept webhooks WITHOUT verification" in banner, banner
        assert "DLRHUB_INFOBIP_BASIC_AUTH=dev:" in (tmp_path / "var" / "dev.env").read_text()
        body = {
            "results": [
                {
                    "messageId": "unsigned-1",
                    "to": "41793026727",
                    "doneAt": "2026-01-01T12:00:00.000+0000",
                    "mccMnc": "null",
                    "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5},
                }
            ]
        }
        url = f"http://127.0.0.1:{env['DLRHUB_GATEWAY_PORT']}/webhooks/infobip"
        answer = httpx.post(url, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        read = dlrhub(tmp_path, env, "status", "get", "infobip", "unsigned-1", "--full")
        assert "unsigned-1: DELIVERED" in read.stdout, read.stdout + read.stderr
        # Other providers still verify with the development credentials.
        plivo = f"http://127.0.0.1:{env['DLRHUB_GATEWAY_PORT']}/webhooks/plivo"
        refused = httpx.post(plivo, data={"MessageUUID": "u", "Status": "delivered"}, timeout=10)
        assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


@pytest.mark.e2e
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


@pytest.mark.e2e
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


def test_every_hint_names_the_ports_in_use(environ: dict[str, str]) -> None:
    """With ports other than the defaults, each printed command carries --url or --target,
    so it works from a terminal that does not share dlrhub run's environment."""
    environ.update(DLRHUB_GATEWAY_PORT="18080", DLRHUB_STATUSD_PORT="15051")
    statusd_settings, gateway_settings = load(StatusdSettings), load(GatewaySettings)
    banner = run._banner("http://127.0.0.1:18080", statusd_settings, gateway_settings, False)
    commands = [
        line
        for line in banner.splitlines()
        if "dlrhub send-sample" in line or "dlrhub status" in line
    ]
    assert len(commands) == 4
    for line in commands:
        if "send-sample" in line:
            assert "--url http://127.0.0.1:18080/webhooks/" in line, line
        else:
            assert "--target 127.0.0.1:15051" in line, line

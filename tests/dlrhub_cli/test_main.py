"""The ``dlrhub`` command line: its sub-commands, the local gateway URL ``send-sample``
defaults to, and the exit codes of usage errors."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from dlrhub_cli.main import main
from dlrhub_common.net import free_port
from tests.helpers.processes import BIN, INFOBIP_BASIC_AUTH

ROOT = Path(__file__).parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no var/dev.env of the checkout is read


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_send_sample_defaults_to_the_local_gateway(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DLRHUB_GATEWAY_PORT", str(port))
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
    assert main(["send-sample", "infobip"]) == 2
    assert f":{port}/webhooks/infobip: " in capsys.readouterr().err
    assert main(["send-sample", "infobip", "--account", "eu"]) == 2
    assert "no account 'eu'" in capsys.readouterr().err


def test_send_sample_to_a_given_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/nosuch"
    assert main(["send-sample", "nosuch", "--url", url]) == 2
    assert "unknown provider 'nosuch'" in capsys.readouterr().err


def test_status_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["status", "get", "infobip", "x", "--token", "a", "--token-file", "b"]
    assert main(argv) == 2
    assert "dlrhub status get: give --token or --token-file, not both" in capsys.readouterr().err


def test_quarantine_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quarantine", "list", "--cert-file", "client.crt"]) == 2
    assert "--cert-file and --key-file go together" in capsys.readouterr().err


def test_run_reports_a_busy_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("DLRHUB_GATEWAY_PORT", str(busy.getsockname()[1]))
        monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
        assert main(["run"]) == 1
    assert "dlrhub run: " in capsys.readouterr().err


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"dlrhub {PROJECT['version']}\n"


def test_the_client_distribution_has_the_same_version() -> None:
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert client["version"] == PROJECT["version"]
    pins = [dep for dep in PROJECT["dependencies"] if dep.startswith("dlrhub-client")]
    assert pins == [f"dlrhub-client=={client['version']}"]


def test_run_stops_at_a_misspelt_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DLRHUB_READ_TOKEN", "secret-token")
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
    assert main(["run"]) == 1
    assert capsys.readouterr().err == (
        "dlrhub run: bad configuration: DLRHUB_READ_TOKEN is not a dlrhub setting; "
        "did you mean DLRHUB_READ_TOKENS?\n"
    )


def closed_pipe_run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``dlrhub ARGS`` writing into a real pipe whose reader has gone, as after
    ``dlrhub ... | head -1``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    clean.pop("PYTHONUNBUFFERED", None)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(BIN / "dlrhub"), *args],
            cwd=cwd,
            env={**clean, **env},
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["--help"], ["status", "list", "--help"], ["--version"]])
def test_a_closed_pipe_ends_the_command_quietly(args: list[str], tmp_path: Path) -> None:
    """No traceback, and the exit status a shell reports for SIGPIPE; unbuffered (argparse
    then meets the closed pipe itself and ignores it) the command ends quietly too."""
    done = closed_pipe_run(args, tmp_path)
    assert (done.returncode, done.stderr) == (141, "")
    unbuffered = closed_pipe_run(args, tmp_path, PYTHONUNBUFFERED="1")
    assert (unbuffered.returncode, unbuffered.stderr) in ((0, ""), (141, ""))

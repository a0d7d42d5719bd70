"""statusd/__main__.py (``dlrhub-statusd``): what cannot start ends the process with one line
on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from statusd.storage.sqlite_schema import SCHEMA_VERSION
from tests.helpers.processes import Service, free_port, last_line, port_open, run_to_end


def run_statusd(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {
        "DLRHUB_SQLITE_PATH": str(tmp_path / "statusd.sqlite3"),
        "DLRHUB_STATUSD_HOST": "127.0.0.1",
        "DLRHUB_STATUSD_PORT": str(free_port()),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        **env,
    }
    return run_to_end("dlrhub-statusd", settings, tmp_path)


def test_a_store_of_a_newer_statusd_ends_start_up_naming_both_versions(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "statusd.sqlite3") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    line = last_line(run_statusd(tmp_path))
    assert line.startswith("dlrhub-statusd: sqlite ")
    assert f"schema version {SCHEMA_VERSION + 1} was written by a newer statusd" in line
    assert f"reads versions up to {SCHEMA_VERSION}" in line


def test_a_bad_setting_ends_start_up_naming_the_variable(tmp_path: Path) -> None:
    line = last_line(run_statusd(tmp_path, DLRHUB_MULTIPART_POLICY="best"))
    assert line.startswith("dlrhub-statusd: bad configuration: ")
    assert "DLRHUB_MULTIPART_POLICY" in line


def test_a_misspelt_variable_ends_start_up_naming_the_nearest_setting(tmp_path: Path) -> None:
    line = last_line(run_statusd(tmp_path, DLRHUB_READ_TOKEN="secret-token"))
    assert line == (
        "dlrhub-statusd: bad configuration: DLRHUB_READ_TOKEN is not a dlrhub setting; "
        "did you mean DLRHUB_READ_TOKENS?"
    )


def test_gateway_settings_in_the_environment_are_accepted(tmp_path: Path) -> None:
    """One environment often serves both processes: the gateway's settings are no typo."""
    line = last_line(
        run_statusd(tmp_path, DLRHUB_INFOBIP_BASIC_AUTH="a:b", DLRHUB_MULTIPART_POLICY="best")
    )
    assert line.startswith("dlrhub-statusd: bad configuration: DLRHUB_MULTIPART_POLICY")


def test_a_second_statusd_on_the_same_port_does_not_start(tmp_path: Path) -> None:
    """grpcio would share the port (SO_REUSEPORT) and split the calls between both."""
    port = free_port()
    env = {
        "DLRHUB_SQLITE_PATH": str(tmp_path / "first.sqlite3"),
        "DLRHUB_STATUSD_PORT": str(port),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
    }
    first = Service("dlrhub-statusd", env, tmp_path / "first.log").start()
    try:
        first.wait_until(lambda: port_open(port))
        line = last_line(run_statusd(tmp_path, DLRHUB_STATUSD_PORT=str(port)))
        assert first.process is not None
        assert first.process.poll() is None  # the first one still serves, alone
        assert port_open(port)
    finally:
        first.stop()
    assert line == f"dlrhub-statusd: DLRHUB_STATUSD_PORT: 127.0.0.1:{port} is already in use"


@pytest.mark.parametrize("variable", ["DLRHUB_STATUSD_HEALTH_PORT", "DLRHUB_STATUSD_METRICS_PORT"])
def test_a_taken_port_ends_start_up_naming_its_variable(tmp_path: Path, variable: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = last_line(run_statusd(tmp_path, **{variable: str(port)}))
    assert line == f"dlrhub-statusd: {variable}: 127.0.0.1:{port} is already in use"

"""statusd/__main__.py (``dlrhub-statusd``): what cannot start ends the process with one line
on stderr and exit code 1, never a traceback."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from statusd.storage.sqlite_schema import SCHEMA_VERSION
from tests.helpers.processes import BIN, free_port


def run_statusd(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {
        "DLRHUB_SQLITE_PATH": str(tmp_path / "statusd.sqlite3"),
        "DLRHUB_STATUSD_HOST": "127.0.0.1",
        "DLRHUB_STATUSD_PORT": str(free_port()),
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        "PATH": "/usr/bin:/bin",
        **env,
    }
    return subprocess.run(
        [str(BIN / "dlrhub-statusd")],
        check=False,
        env=settings,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()[-1]


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

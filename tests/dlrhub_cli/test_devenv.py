"""``var/dev.env``: development credentials generated once when nothing configures a
provider, written readable by the owner only, and loaded without overriding the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlrhub_cli import devenv


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private copy of the environment, so loaded credentials leave with the test."""
    copy = dict(os.environ)
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev.env"
    devenv.write({"DLRHUB_A": "1", "DLRHUB_B": "x=y"}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("# Development credentials")
    assert devenv.read(path) == {"DLRHUB_A": "1", "DLRHUB_B": "x=y"}
    assert devenv.read(tmp_path / "missing.env") == {}


def test_read_skips_comments_blanks_and_junk(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    path.write_text("# comment\n\n  KEY = value  \nno equals sign\n#X=1\n")
    assert devenv.read(path) == {"KEY": "value"}


def test_load_keeps_what_the_environment_sets(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    devenv.write({"DLRHUB_A": "file", "DLRHUB_B": "file"}, path)
    environ = {"DLRHUB_A": "set"}
    devenv.load(environ, path)
    assert environ == {"DLRHUB_A": "set", "DLRHUB_B": "file"}


def test_ensure_generates_once_and_loads(tmp_path: Path, environ: dict[str, str]) -> None:
    path = tmp_path / "var" / "dev.env"
    assert not devenv.has_provider_credentials()
    assert devenv.ensure(path)
    written = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert environ["DLRHUB_INFOBIP_BASIC_AUTH"].startswith("dev:")
    assert devenv.has_provider_credentials()
    sns_dir = Path(environ["DLRHUB_AWS_SNS_CERT_DIR"])
    assert sns_dir.parent == path.parent
    assert Path(environ["DLRHUB_AWS_SNS_SAMPLE_SIGNING_KEY_FILE"]).stat().st_mode & 0o077 == 0
    assert not devenv.ensure(path)  # credentials are configured now: nothing to do
    assert path.read_text() == written


def test_ensure_leaves_configured_providers_alone(tmp_path: Path, environ: dict[str, str]) -> None:
    environ["DLRHUB_PLIVO_AUTH_TOKEN"] = "mine"
    path = tmp_path / "dev.env"
    assert not devenv.ensure(path)
    assert not path.exists()


def test_load_if_present(tmp_path: Path, environ: dict[str, str]) -> None:
    path = tmp_path / "dev.env"
    devenv.load_if_present(path)  # no file: nothing happens
    assert "DLRHUB_PLIVO_AUTH_TOKEN" not in environ
    devenv.write({"DLRHUB_PLIVO_AUTH_TOKEN": "from-file"}, path)
    devenv.load_if_present(path)
    assert environ["DLRHUB_PLIVO_AUTH_TOKEN"] == "from-file"

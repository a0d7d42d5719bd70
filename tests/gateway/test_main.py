"""gateway/__main__.py (``dlrhub-gateway``): what cannot start ends the process with one line
on stderr and exit code 1, never a traceback (its graceful stop: tests/e2e/test_shutdown.py)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
from pathlib import Path

import pytest
from sanic import Sanic

from gateway import __main__ as gateway_main
from gateway.__main__ import _freeze_loaded
from tests.helpers.processes import free_port, last_line, run_to_end


def run_gateway(tmp_path: Path, **env: str) -> str:
    """Runs the gateway to its end; its last line on stderr."""
    settings = {
        "DLRHUB_GATEWAY_PORT": str(free_port()),
        "DLRHUB_INFOBIP_BASIC_AUTH": "acme:s3cret",
        **env,
    }
    return last_line(run_to_end("dlrhub-gateway", settings, tmp_path))


def test_a_misspelt_variable_ends_start_up_naming_the_nearest_setting(tmp_path: Path) -> None:
    line = run_gateway(tmp_path, DLRHUB_INFOBIP_BASIC_AUTHS="acme:s3cret")
    assert line == (
        "dlrhub-gateway: bad configuration: DLRHUB_INFOBIP_BASIC_AUTHS is not a dlrhub "
        "setting; did you mean DLRHUB_INFOBIP_BASIC_AUTH?"
    )


def test_a_basic_pair_without_a_colon_ends_start_up_naming_the_variable(tmp_path: Path) -> None:
    line = run_gateway(tmp_path, DLRHUB_INFOBIP_BASIC_AUTH="acme-s3cret")
    assert line == (
        "dlrhub-gateway: bad configuration: DLRHUB_INFOBIP_BASIC_AUTH: Value error, "
        "item 1 is not a user:password pair"
    )
    assert "acme-s3cret" not in line


def test_a_taken_port_ends_start_up_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = run_gateway(tmp_path, DLRHUB_GATEWAY_PORT=str(port))
    assert line == f"dlrhub-gateway: DLRHUB_GATEWAY_PORT: 127.0.0.1:{port} is already in use"


def test_what_start_up_loaded_is_left_out_of_full_collections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    asyncio.run(_freeze_loaded(Sanic("freeze-test", configure_logging=False)))
    assert frozen == [True]
    source = inspect.getsource(gateway_main.main)
    assert "app.after_server_start(_freeze_loaded)" in source

"""Shared test set-up: a clean DLRHUB_ environment for every test, Sanic in test mode, and a
real statusd on 127.0.0.1 (any free port) with a real channel to it."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sanic import Sanic

from statusd.server import Statusd
from tests.helpers.servers import running_statusd, statusd_settings

DATA = Path(__file__).parent / "data"

Sanic.test_mode = True  # many gateway apps per process


def _settings_variables() -> list[str]:
    return [
        key
        for key in os.environ
        if key.startswith("DLRHUB_") and not key.startswith("DLRHUB_TEST_")
    ]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's DLRHUB_* settings (DLRHUB_TEST_* stay), and none leaks
    the ones it added to the tests after it: a ``dlrhub`` command run in-process loads the
    checkout's ``var/dev.env`` into ``os.environ``, whose relative paths mean nothing to the
    processes a later test starts elsewhere."""
    for key in _settings_variables():
        monkeypatch.delenv(key)
    yield
    for key in _settings_variables():
        del os.environ[key]


def signature_vectors(provider: str) -> list[dict[str, Any]]:
    """The shared signature test vectors of one provider (tests/data/signature_vectors.json)."""
    vectors: list[dict[str, Any]] = json.loads(
        (DATA / "signature_vectors.json").read_text(encoding="utf-8")
    )
    return [vector for vector in vectors if vector["provider"] == provider]


@pytest.fixture
async def statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    async with running_statusd(statusd_settings(tmp_path)) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        yield opened

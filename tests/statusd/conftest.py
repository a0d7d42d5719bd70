"""A real statusd on 127.0.0.1 (any free port) and a real channel to it.

Every test that uses it runs twice: on the embedded SQLite store, and on the MongoDB store over
mongomock (injected, so the gRPC server, committer and store run exactly as in production).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from statusd.server import Statusd
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.stores import Backend


@pytest.fixture(params=["sqlite", "mongomock"])
async def statusd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Statusd]:
    store = Backend(request.param, tmp_path).store()
    async with running_statusd(statusd_settings(tmp_path), store=store) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        yield opened

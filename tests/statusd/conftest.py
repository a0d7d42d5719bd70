"""A real statusd on 127.0.0.1 (any free port) and a real channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from statusd.server import Statusd
from tests.helpers.servers import running_statusd, statusd_settings


@pytest.fixture
async def statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    async with running_statusd(statusd_settings(tmp_path)) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        yield opened

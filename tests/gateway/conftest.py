"""A real statusd and a real gateway (Sanic) on loopback, with an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from statusd.server import Statusd
from statusd.storage.base import MessageFilter
from tests.helpers.servers import Gateway, running_gateway, running_statusd, statusd_settings

#: Credentials the gateway tests configure.
ENV = {
    "DLRHUB_INFOBIP_BASIC_AUTH": "infobip:pw",
    "DLRHUB_INFOBIP_HMAC_SECRET": "hmac-key",
    "DLRHUB_PLIVO_AUTH_TOKEN": "plivo-token",
    "DLRHUB_PLIVO_ACCOUNTS": '{"eu": {"auth_token": "plivo-eu-token"}}',
}
PUBLIC_URL = "https://dlr.example.com"


@dataclass
class Stack:
    statusd: Statusd
    gateway: Gateway
    http: httpx.AsyncClient

    async def stored_messages(self) -> int:
        page = await self.statusd.store.list_messages(MessageFilter(), after=None, limit=1000)
        return len(page.items)

    async def quarantined(self) -> int:
        return len(await self.statusd.store.quarantined(after=None, limit=1000))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        running_gateway(
            ENV,
            f"127.0.0.1:{daemon.port}",
            public_url=PUBLIC_URL,
            max_body_bytes=64 * 1024,
            ingest_deadline_seconds=2.0,
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        yield Stack(daemon, gateway, http)


StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    """Starts a stack with the gateway settings given (``make_stack(max_headers=20)``) and, in
    ``env``, credentials beside ENV (``make_stack(env={"DLRHUB_PLIVO_ALLOW_V2": "true"})``)."""

    @asynccontextmanager
    async def make(env: Mapping[str, str] | None = None, **settings: Any) -> AsyncIterator[Stack]:
        async with (
            running_statusd(statusd_settings(tmp_path)) as daemon,
            running_gateway(
                {**ENV, **(env or {})},
                f"127.0.0.1:{daemon.port}",
                public_url=PUBLIC_URL,
                **settings,
            ) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
        ):
            yield Stack(daemon, gateway, http)

    return make

"""In-process servers on loopback for tests: a real statusd and a real Sanic gateway."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from sanic import Sanic

from common.settings import load
from gateway.app import create_app
from gateway.forwarder import Forwarder
from gateway.settings import GatewayConfig, GatewaySettings
from statusd.server import Statusd
from statusd.settings import StatusdSettings
from statusd.storage import Store


def statusd_settings(tmp_path: Path, **overrides: Any) -> StatusdSettings:
    values: dict[str, Any] = {
        "statusd_host": "127.0.0.1",
        "statusd_port": 0,
        "statusd_metrics_port": 0,
        "sqlite_path": tmp_path / "statusd.sqlite3",
        "shutdown_grace_seconds": 2.0,
    }
    values.update(overrides)
    return load(StatusdSettings, **values)


@contextlib.asynccontextmanager
async def running_statusd(
    settings: StatusdSettings, store: Store | None = None
) -> AsyncIterator[Statusd]:
    daemon = Statusd(settings, store)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop(grace=1.0)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Sets environment variables for the duration (and removes ``DLRHUB_*`` ones not given)."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("DLRHUB_"):
            del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Gateway:
    """A started gateway: its base URL and app."""

    def __init__(self, app: Sanic[Any, Any], port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def running_gateway(
    env: Mapping[str, str], statusd_target: str, **settings: Any
) -> AsyncIterator[Gateway]:
    """A real Sanic server on 127.0.0.1 (any free port) configured from ``env``."""
    with environment(env):
        gateway_settings = load(
            GatewaySettings,
            statusd_host=statusd_target.rsplit(":", 1)[0],
            statusd_port=int(statusd_target.rsplit(":", 1)[1]),
            **settings,
        )
        config = GatewayConfig.load(gateway_settings)
    forwarder = Forwarder.from_settings(gateway_settings)
    app = create_app(config, forwarder=forwarder)
    server: Any = await app.create_server(
        host="127.0.0.1", port=0, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    port = server.server.sockets[0].getsockname()[1]
    try:
        yield Gateway(app, port)
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
        await forwarder.close()

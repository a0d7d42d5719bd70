"""In-process servers on loopback for tests: a real statusd and a real Sanic gateway."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sanic import Sanic

from dlrhub_common.settings import load
from gateway.admission import CappedHttpProtocol
from gateway.app import create_app
from gateway.forwarder import Forwarder
from gateway.settings import GatewayConfig, GatewaySettings
from statusd.server import Statusd
from statusd.settings import StatusdSettings
from statusd.storage.base import Store

_T = TypeVar("_T")


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
    """A started statusd; ``store`` replaces the one the settings name (e.g. MongoDB over
    mongomock)."""
    daemon = Statusd(settings, store=store)
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
    """A real Sanic server on 127.0.0.1 (any free port) configured from ``env``, its calls
    going to ``statusd_target`` (host:port, or any gRPC target naming several statusd)."""
    with environment(env):
        gateway_settings = load(GatewaySettings, statusd_target=statusd_target, **settings)
        config = GatewayConfig.load(gateway_settings)
    forwarder = Forwarder.from_settings(gateway_settings)
    app = create_app(config, forwarder=forwarder)
    # Sanic reads port 0 as "the default, 8000": bind an ephemeral port ourselves.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server: Any = await app.create_server(
        sock=listener, return_asyncio_server=True, access_log=False, protocol=CappedHttpProtocol
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


class BackgroundStack:
    """statusd and the gateway on their own event loop in a thread, for synchronous tests
    (Hypothesis drives those): ``url`` to send requests to, ``run`` to query statusd's store."""

    def __init__(self, tmp_path: Path, env: Mapping[str, str], **gateway_settings: Any) -> None:
        self._tmp_path = tmp_path
        self._env = env
        self._settings = gateway_settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop = asyncio.Event()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.url = ""
        self.port = 0
        self.statusd: Statusd | None = None

    async def _serve(self) -> None:
        try:
            async with running_statusd(statusd_settings(self._tmp_path)) as daemon:
                target = f"127.0.0.1:{daemon.port}"
                async with running_gateway(self._env, target, **self._settings) as gateway:
                    self.statusd = daemon
                    self.url = gateway.url
                    self.port = gateway.port
                    self._ready.set_result(None)
                    await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def __enter__(self) -> BackgroundStack:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._ready.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._task.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

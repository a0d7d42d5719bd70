"""``python -m gateway`` / ``dlrhub-gateway``: the webhook gateway (one Sanic process).

Run as a real process by the end-to-end tests (tests/e2e/test_shutdown.py for the graceful
stop, tests/deploy/test_chart_processes.py with the chart's environment)."""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import sys
from typing import Any

from sanic import Sanic

from dlrhub_common import logs, tracing
from dlrhub_common.config_names import check_environment
from dlrhub_common.net import BindError
from dlrhub_common.settings import ConfigError
from gateway.admission import CappedHttpProtocol
from gateway.app import create_app
from gateway.settings import GatewayConfig, known_variables

log = logging.getLogger("gateway")


def _defer_early_signals(app: Sanic[Any, Any]) -> None:
    """A SIGTERM or SIGINT that arrives before Sanic installs its own handlers (the server may
    already answer by then) still means a graceful stop, not sudden death."""
    received: list[int] = []

    def remember(signum: int, frame: object) -> None:
        received.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, remember)

    @app.after_server_start
    async def _stop_if_asked(app: Sanic[Any, Any]) -> None:
        if received:
            app.stop(terminate=False)


async def _freeze_loaded(app: Sanic[Any, Any]) -> None:
    """Once the server runs (``after_server_start``), everything loaded so far (modules,
    settings, the app, the channel to statusd) lives as long as the process: leave it out of
    the garbage collector's full passes, which otherwise walk all of it (a pause of every
    webhook in flight that grows with what is loaded)."""
    gc.freeze()


def main() -> None:
    try:
        check_environment(known_variables(), os.environ)
        config = GatewayConfig.load()
    except ConfigError as exc:
        sys.exit(f"dlrhub-gateway: bad configuration: {exc}")
    settings = config.settings
    logs.configure(
        settings.log_level, settings.log_format, mask_phones=not settings.log_phone_numbers
    )
    log.info("configuration", extra={"settings": settings.redacted()})
    tracing.setup("dlrhub-gateway")
    config.describe()
    app = create_app(config)
    _defer_early_signals(app)
    app.after_server_start(_freeze_loaded)
    log.info(
        "gateway listening",
        extra={
            "http": f"http://{settings.gateway_host}:{settings.gateway_port}",
            "public_url": settings.public_base,
            "statusd": settings.grpc_target,
        },
    )
    try:
        app.run(
            host=settings.gateway_host,
            port=settings.gateway_port,
            single_process=True,
            protocol=CappedHttpProtocol,
            access_log=False,
            motd=False,
        )
    except OSError as exc:  # the HTTP port: in use, or not an address of this host
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else ""
        error = BindError(
            "DLRHUB_GATEWAY_PORT", settings.gateway_host, settings.gateway_port, reason
        )
        sys.exit(f"dlrhub-gateway: {error}")


if __name__ == "__main__":
    main()

"""``python -m gateway`` / ``dlrhub-gateway``: the webhook gateway (one Sanic process)."""

from __future__ import annotations

import logging
import sys

from common import logs
from common.settings import ConfigError
from gateway.app import create_app
from gateway.settings import GatewayConfig

log = logging.getLogger("gateway")


def main() -> None:
    try:
        config = GatewayConfig.load()
    except ConfigError as exc:
        sys.exit(f"dlrhub-gateway: bad configuration: {exc}")
    settings = config.settings
    logs.configure(
        settings.log_level, settings.log_format, mask_phones=not settings.log_phone_numbers
    )
    log.info("configuration", extra={"settings": settings.redacted()})
    config.describe()
    app = create_app(config)
    log.info(
        "gateway listening",
        extra={
            "http": f"http://{settings.gateway_host}:{settings.gateway_port}",
            "public_url": settings.public_base,
            "statusd": settings.statusd_target,
        },
    )
    try:
        app.run(
            host=settings.gateway_host,
            port=settings.gateway_port,
            single_process=True,
            access_log=False,
            motd=False,
        )
    except OSError as exc:
        sys.exit(f"dlrhub-gateway: {exc}")


if __name__ == "__main__":
    main()

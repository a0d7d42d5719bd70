"""``python -m statusd`` / ``dlrhub-statusd``: the status daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from dlrhub_common import logs, tracing
from dlrhub_common.config_names import GATEWAY_SETTINGS, check_environment, variables
from dlrhub_common.settings import ConfigError, load
from statusd.server import serve
from statusd.settings import StatusdSettings
from statusd.storage import SchemaTooNew


def _run(main: Coroutine[Any, Any, None]) -> None:
    """uvloop's event loop where it is installed (faster I/O for grpc.aio), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    try:
        check_environment(variables(StatusdSettings) | GATEWAY_SETTINGS, os.environ)
        settings = load(StatusdSettings)
    except ConfigError as exc:
        sys.exit(f"dlrhub-statusd: bad configuration: {exc}")
    logs.configure(
        settings.log_level, settings.log_format, mask_phones=not settings.log_phone_numbers
    )
    logging.getLogger("statusd").info("configuration", extra={"settings": settings.redacted()})
    tracing.setup("dlrhub-statusd")
    try:
        _run(serve(settings))
    except ConfigError as exc:
        sys.exit(f"dlrhub-statusd: bad configuration: {exc}")
    except (OSError, SchemaTooNew) as exc:
        sys.exit(f"dlrhub-statusd: {exc}")


if __name__ == "__main__":
    main()

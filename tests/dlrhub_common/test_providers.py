"""The provider names statusd accepts are exactly the gateway's, and importing them pulls in
no gateway code."""

from __future__ import annotations

import subprocess
import sys

from dlrhub_common.providers import PROVIDER_NAMES
from gateway.providers import PROVIDERS


def test_the_names_are_the_gateway_registry() -> None:
    assert set(PROVIDERS) == PROVIDER_NAMES


def test_statusd_imports_neither_the_gateway_nor_sanic() -> None:
    probe = (
        "import sys, statusd.server, statusd.service, dlrhub_common.providers; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'gateway', 'sanic'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"

"""The stack every end-to-end test runs against: statusd and the gateway as real processes on
loopback, with their SQLite file and logs in the test's own directory. A test module that
needs other settings overrides ``stack_env``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import CREDENTIALS, Stack


@pytest.fixture
def stack_env() -> dict[str, str]:
    """The stack's DLRHUB_* environment (ports and the SQLite path are added by Stack)."""
    return dict(CREDENTIALS)


@pytest.fixture
def stack(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Stack]:
    running = Stack(tmp_path, stack_env).start()
    try:
        yield running
    finally:
        running.stop()

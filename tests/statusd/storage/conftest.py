"""The ``store`` fixture: every test in this folder runs against every backend.

SQLite always, on a real file in a temporary directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from statusd.storage.base import Store
from statusd.storage.sqlite import SqliteStore

BACKENDS = ["sqlite"]


def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "store.sqlite3")


FACTORIES: dict[str, Callable[[Path], Store]] = {"sqlite": _sqlite}


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = FACTORIES[request.param](tmp_path)
    await made.open()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A fresh store instance over the same data (to check what survived a close)."""
    backend = request.node.callspec.params["store"]
    return lambda: FACTORIES[backend](tmp_path)

"""The ``store`` fixture: every test in this folder runs against every backend.

SQLite always, on a real file in a temporary directory; MongoStore over mongomock (as a
standalone server and as a replica set with an emulated change stream) always; a real MongoDB
only when ``DLRHUB_TEST_MONGODB_URI`` is set (see :mod:`tests.helpers.stores`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from statusd.storage.base import Store
from tests.helpers.stores import BACKENDS, Backend


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = Backend(request.param, tmp_path)
    try:
        yield made
    finally:
        await made.drop()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    made = backend.store()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def reopen(backend: Backend) -> Callable[[], Store]:
    """A fresh store instance over the same data (to check what survived a close, or to act
    as another statusd replica writing the same database)."""
    return backend.store

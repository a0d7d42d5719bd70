"""The ``store`` fixture: every test in this folder runs against every backend.

SQLite always, on a real file in a temporary directory; MongoStore over mongomock (as a
standalone server and as a replica set with an emulated change stream) always; the same over
the fault double (``mongomock-faults``: a replica set whose every other read, and the first
request of every commit, fails with a step-down, a network timeout or the 16 MiB limit before
it takes effect, each operation retried once, as the gateway, the provider and a client do;
the fault matrix in test_mongo_faults.py fails every request of a commit in every way); a
real MongoDB only when ``DLRHUB_TEST_MONGODB_URI`` is set (see :mod:`tests.helpers.stores`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from statusd.storage.base import Store
from statusd.storage.mongo import MongoStore
from tests.helpers.mongo_faults import EveryOtherRequest, FaultClient, FaultPlan, RetryingMongoStore
from tests.helpers.mongomock_async import MockServer
from tests.helpers.stores import BACKENDS, Backend

FAULTS = "mongomock-faults"


class FaultBackend(Backend):
    """MongoStore over the fault double, on an emulated replica set."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__("mongomock-replset", tmp_path)
        self.chooser = EveryOtherRequest()
        self.plan = FaultPlan(before_write=True, chooser=self.chooser)
        self.made: list[RetryingMongoStore] = []

    def store(self, store_class: type[Store] | None = None) -> Store:
        assert store_class is None, "the fault mode makes its own stores"
        client = FaultClient(self.server.client(), self.plan).typed()
        made = RetryingMongoStore(client, self.chooser, database=self.database)
        self.made.append(made)
        return made


@pytest.fixture(params=[*BACKENDS, FAULTS])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = FaultBackend(tmp_path) if request.param == FAULTS else Backend(request.param, tmp_path)
    try:
        yield made
    finally:
        await made.drop()
    if isinstance(made, FaultBackend):  # the mode is not vacuous: faults hit, retries healed
        assert made.plan.fired, "no fault was injected"
        assert sum(store.retries for store in made.made) >= 1


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


@pytest.fixture
async def replset() -> MockServer:
    """An emulated replica set (mongomock with the adapter's change stream)."""
    return MockServer(replica_set=True)


@pytest.fixture
async def stores() -> AsyncIterator[Callable[..., Any]]:
    """Opens MongoStores over a server (closed after the test)."""
    opened: list[MongoStore] = []

    async def make(server: MockServer, **options: Any) -> MongoStore:
        made = MongoStore(server.client(), **options)
        await made.open()
        opened.append(made)
        return made

    yield make
    for made in opened:
        await made.close()

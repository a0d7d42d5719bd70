"""statusd/storage/mongo_server.py: what the MongoDB store learns about its server, on every
version PyMongo supports (over mongomock answering as that version)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from statusd.storage.base import StoreUnavailable
from statusd.storage.mongo import MongoStore
from statusd.storage.mongo_server import ServerInfo, server_info
from statusd.storage.mongo_stream import StreamFeed
from tests.helpers.mongomock_async import MockServer


@pytest.mark.parametrize("version", ["4.4.0", "4.4.2", "8.0.4"])
async def test_the_server_is_recognized_on_every_version_the_driver_supports(
    version: str, stores: Callable[..., Any]
) -> None:
    """4.4.0 and 4.4.1 answer ``hello`` with CommandNotFound (as the mock does): isMaster."""
    server = MockServer(replica_set=True, version=version)
    store = await stores(server)
    assert isinstance(store._feed, StreamFeed)  # a replica set, from hello or isMaster
    assert await server_info(server.client()) == ServerInfo(version=version, replicated=True)


async def test_a_server_older_than_the_minimum_is_refused_by_name() -> None:
    store = MongoStore(MockServer(version="4.2.8").client())
    with pytest.raises(
        StoreUnavailable, match=r"MongoDB 4\.2\.8 .* oldest server supported: Mongo"
    ):
        await store.open()

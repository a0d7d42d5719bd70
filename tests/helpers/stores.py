"""Store backends for tests: every store test runs against each of :data:`BACKENDS`.

* ``sqlite``: a real SQLite file in the test's temporary directory.
* ``mongomock``: :class:`statusd.storage.mongo.MongoStore` over mongomock as a standalone
  server (through the async adapter in :mod:`tests.helpers.mongomock_async`).
* ``mongomock-replset``: the same, answering as a replica set, with the adapter's emulated
  change stream (mongomock has none), so the change-stream code path runs too.
* ``mongodb``: a real MongoDB at ``DLRHUB_TEST_MONGODB_URI``, each test in its own database,
  dropped afterwards. Present only when that variable is set; otherwise not parametrized at
  all (no skipped tests).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.base import Store
from statusd.storage.mongo import MongoStore, mongo_client
from statusd.storage.sqlite import SqliteStore
from tests.helpers.mongomock_async import MockServer

REAL_MONGODB_URI = os.environ.get("DLRHUB_TEST_MONGODB_URI", "")
MONGO_BACKENDS = ["mongomock", "mongomock-replset", *(["mongodb"] if REAL_MONGODB_URI else [])]
BACKENDS = ["sqlite", *MONGO_BACKENDS]


class Backend:
    """One test's data in one backend; :meth:`store` makes store instances over it."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "store.sqlite3"
        self.server = MockServer(replica_set=kind == "mongomock-replset")
        self.database = f"dlrhub_test_{uuid.uuid4().hex[:16]}"

    def store(self, store_class: type[Store] | None = None) -> Store:
        """A new, unopened store instance over this backend's data (``store_class`` may be a
        subclass of the backend's own class, for fault injection)."""
        if self.kind == "sqlite":
            return (store_class or SqliteStore)(self.path)  # type: ignore[call-arg]
        client = mongo_client(REAL_MONGODB_URI) if self.kind == "mongodb" else self.server.client()
        return (store_class or MongoStore)(client, database=self.database)  # type: ignore[call-arg]

    async def drop(self) -> None:
        if self.kind == "mongodb":
            client = mongo_client(REAL_MONGODB_URI)
            try:
                await client.drop_database(self.database)
            finally:
                await client.close()


async def assert_in_the_fold(
    store: Store, reports: list[pb.DeliveryReport], *, fields: bool = False
) -> None:
    """Every message's stored state is what the pure fold of ``reports`` computes; with
    ``fields``, also the status fields and country (use it when every order of ``reports``
    fills them alike: one value per message and field)."""
    for (provider, account, message_id), state in model.fold(reports).items():
        key = pb.MessageKey(provider=provider, account=account, message_id=message_id)
        status = await store.get(key, full=True)
        assert status is not None, key
        assert status.latest_report == state.latest
        assert status.status == state.status
        assert status.report_count == state.report_count
        assert status.conflict == state.conflict
        assert list(status.history) == list(state.history)
        assert _micros(status, "final_time") == model.final_time(state.latest)
        if state.registration is None:
            assert not status.HasField("register_time")
        else:
            submit, deadline = model.registration_micros(state.registration)
            assert (_micros(status, "submit_time"), _micros(status, "report_deadline_time")) == (
                submit,
                deadline,
            )
        if fields:
            assert [(name, getattr(status, name)) for name, _ in state.fields] == list(state.fields)
            assert status.country == state.country


def _micros(status: pb.MessageStatus, name: str) -> int | None:
    return model.micros(getattr(status, name)) if status.HasField(name) else None  # type: ignore[arg-type]

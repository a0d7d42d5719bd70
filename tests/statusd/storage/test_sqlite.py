"""What only the SQLite store does: point reads on the event loop's own connection, with the
thread pool taking over when the file is busy. Which connection reads shows in no answer, and a
real file cannot be made busy for readers once the store has it open (WAL), so these tests look
at and replace the store's loop connection. Closing waits for reads still running on the pool:
closing a connection another thread uses crashes sqlite3."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.sqlite import SqliteStore
from tests.helpers.reports import report


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    made = SqliteStore(tmp_path / "store.sqlite3")
    await made.open()
    await made.commit([model.with_event_id(report(message_id="m-1"))])
    yield made
    await made.close()


class BusyConnection:
    """Answers every statement with SQLITE_BUSY, as a file in the middle of recovery would."""

    def execute(self, *args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")


KEY = pb.MessageKey(provider="infobip", message_id="m-1")


async def test_point_reads_use_the_loop_connection(store: SqliteStore) -> None:
    assert (await store.get(KEY)) is not None
    assert store._loop_connection is not None


async def test_a_busy_file_moves_the_read_to_the_pool(store: SqliteStore) -> None:
    store._loop_connection = BusyConnection()  # type: ignore[assignment]
    found = await store.get(KEY)
    assert found is not None
    assert found.status == pb.DELIVERY_STATUS_DELIVERED
    assert [status.message_id for status in await store.batch_get([KEY])] == ["m-1"]


async def test_close_waits_for_a_read_whose_caller_gave_up(tmp_path: Path) -> None:
    made = SqliteStore(tmp_path / "store.sqlite3")
    await made.open()
    running = threading.Event()
    answers: list[object] = []

    def slow(connection: sqlite3.Connection) -> None:
        running.set()
        time.sleep(0.3)
        answers.append(connection.execute("SELECT 1").fetchall())

    read = asyncio.create_task(made._read(slow))
    await asyncio.to_thread(running.wait)
    read.cancel()  # as a stopping Watch hub cancels its read; the thread reads on
    await made.close()
    assert answers == [[(1,)]]  # its connection stayed open until it was done

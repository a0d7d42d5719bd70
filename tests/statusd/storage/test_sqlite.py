"""What only the SQLite store does: point reads on the event loop's own connection, with the
thread pool taking over when the file is busy (which connection reads shows in no answer, and a
real file cannot be made busy for readers once the store has it open (WAL), so these tests look
at and replace the store's loop connection). Closing waits for reads still running on the pool:
closing a connection another thread uses crashes sqlite3. A bounded WAL, truncated when idle;
change positions checked against what the store handed out."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from statusd import model
from statusd.storage.base import InvalidPosition, PositionGone
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


async def test_idle_checkpoints_and_truncates_the_wal(store: SqliteStore) -> None:
    wal = Path(f"{store.path}-wal")
    for index in range(30):
        await store.commit([model.with_event_id(report(message_id=f"wal-{index}"))])
    assert os.path.getsize(wal) > 30 * 4096  # noqa: ASYNC240 - a stat, on purpose
    await store.get(KEY)  # a reader on the loop's connection, between transactions
    await store.idle()
    assert os.path.getsize(wal) == 0  # noqa: ASYNC240
    assert (await store.get(pb.MessageKey(provider="infobip", message_id="wal-29"))) is not None
    with sqlite3.connect(store.path) as check:
        assert check.execute("SELECT count(*) FROM messages").fetchone()[0] == 31


async def test_every_connection_bounds_the_wal(store: SqliteStore) -> None:
    await store.get(KEY)
    assert store._loop_connection is not None
    limit = store._loop_connection.execute("PRAGMA journal_size_limit").fetchone()[0]
    assert limit == 64 * 1024 * 1024


async def test_check_position_knows_what_the_store_handed_out(store: SqliteStore) -> None:
    await store.check_position("0")
    await store.check_position("1")
    with pytest.raises(InvalidPosition):
        await store.check_position("2")
    await store.purge(2**62)
    await store.commit([model.with_event_id(report(message_id="m-2"))])
    with pytest.raises(PositionGone):
        await store.check_position("0")
    await store.check_position("1")  # nothing after it is gone: event 2 is kept

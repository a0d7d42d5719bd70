"""Watch through restarts and failures: resume after statusd restarts (also with a store
whose "now" is no change's position), unexpected read failures, a store that is down at
start, shutdown (statusd/watch.py, with test_watch.py)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from statusd.storage.base import StoreUnavailable
from tests.helpers.odd_stores import TroubledStore, store_for
from tests.helpers.reports import report
from tests.helpers.rpc import ingest, read, read_changes, watch
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.watching import drain, started, when_available


@pytest.mark.parametrize("kind", ["sqlite", "now-naming"])
async def test_resume_after_a_restart(tmp_path: Path, kind: str) -> None:
    """A token from before a restart resumes on the new process, whose hub starts from the
    store's "now" (which, for some stores, is no change's position)."""
    settings = statusd_settings(tmp_path, statusd_port=0)
    async with (
        running_statusd(settings, store_for(kind, tmp_path)) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        call, _ = await started(channel)
        for index in range(10):
            await ingest(channel, report(f"before-{index}"))
        token = (await read_changes(call, 5))[-1].resume_token
        call.cancel()
    async with (
        running_statusd(settings, store_for(kind, tmp_path)) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        resumed = watch(channel, resume_token=token)
        replayed = await read_changes(resumed, 5)
        assert [change.report.message_id for change in replayed] == [
            f"before-{index}" for index in range(5, 10)
        ]
        await ingest(channel, report("after-0"))
        live = await read_changes(resumed, 1)
        assert [change.report.message_id for change in live] == ["after-0"]
        resumed.cancel()


async def test_an_unexpected_read_failure_ends_streams_that_then_resume(tmp_path: Path) -> None:
    store = TroubledStore(tmp_path / "statusd.sqlite3")
    settings = statusd_settings(tmp_path, watch_heartbeat_seconds=0.2)
    async with (
        running_statusd(settings, store) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        call, first = await started(channel)
        store.fail = RuntimeError("a bug in a store")
        await ingest(channel, report("during-1"))
        _, token, error = await drain(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        store.fail = None
        resumed = await when_available(channel, resume_token=token or first.resume_token)
        assert [item.report.message_id for item in await read_changes(resumed, 1)] == ["during-1"]
        resumed.cancel()


async def test_watch_waits_for_a_store_that_is_down_at_start(tmp_path: Path) -> None:
    store = TroubledStore(tmp_path / "statusd.sqlite3")
    store.fail = StoreUnavailable("not yet")
    async with (
        running_statusd(statusd_settings(tmp_path), store) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await read(watch(channel))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        store.fail = None
        call = await when_available(channel)
        await ingest(channel, report("later"))
        assert [item.report.message_id for item in await read_changes(call, 1)] == ["later"]
        call.cancel()


async def test_shutdown_ends_streams_with_unavailable(tmp_path: Path) -> None:
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        call, _ = await started(channel)
        await daemon.hub.stop()
        _, _, error = await drain(call)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await read(watch(channel))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

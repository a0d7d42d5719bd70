"""WatchMessageStatuses over real gRPC: order, filters, resume, heartbeats, slow subscribers."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import metrics
from statusd.server import Statusd
from statusd.storage.base import Change, MessageFilter, StoreUnavailable
from statusd.storage.sqlite import SqliteStore
from tests.helpers.reports import report
from tests.helpers.rpc import WatchCall, ingest, read, read_changes, status_stub, watch
from tests.helpers.servers import running_statusd, statusd_settings

ACCEPTED = pb.DELIVERY_STATUS_ACCEPTED
SENT = pb.DELIVERY_STATUS_SENT
DELIVERED = pb.DELIVERY_STATUS_DELIVERED
PROGRESS = (ACCEPTED, pb.DELIVERY_STATUS_QUEUED, SENT, DELIVERED)
#: A channel that reads ahead very little: a stream it does not read blocks the server soon.
STALLING_OPTIONS = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]

Response = status_pb.WatchMessageStatusesResponse


class NowNamingStore(SqliteStore):
    """Positions the way a change-stream store hands them out: each change has its own
    (``e<id>``), while :meth:`last_position` names "now" (``n<id>``), which no change has.
    Watch must never rely on the two being equal."""

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        found = await super().changes(query, after=after and after[1:], limit=limit)
        return [dataclasses.replace(change, position="e" + change.position) for change in found]

    async def last_position(self) -> str | None:
        last = await super().last_position()
        return None if last is None else "n" + last


def store_for(kind: str, path: Path) -> SqliteStore:
    return (NowNamingStore if kind == "now-naming" else SqliteStore)(path / "statusd.sqlite3")


@pytest.fixture(params=["sqlite", "now-naming"])
async def statusd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Statusd]:
    settings = statusd_settings(tmp_path, watch_heartbeat_seconds=0.2, watch_queue_size=16)
    async with running_statusd(settings, store_for(request.param, tmp_path)) as daemon:
        yield daemon


def progress(message_id: str) -> list[pb.DeliveryReport]:
    """A message's reports in the order they happen: accepted, queued, sent, delivered."""
    return [report(message_id, status, event_offset=step) for step, status in enumerate(PROGRESS)]


def by_message(changes: list[Response]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for change in changes:
        seen[change.report.message_id].append(change.report.status)
    return dict(seen)


async def started(channel: grpc.aio.Channel, **filters: Any) -> tuple[WatchCall, Response]:
    """A watch and its first response (the heartbeat naming the start)."""
    call = watch(channel, **filters)
    first = await read(call)
    assert not first.HasField("message_status")
    assert first.resume_token
    return call, first


async def gauge_settles(value: float) -> None:
    for _ in range(200):
        if metrics.WATCHERS._value.get() == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"dlrhub_watchers is {metrics.WATCHERS._value.get()}, not {value}")


async def test_every_change_once_in_order_per_message(channel: grpc.aio.Channel) -> None:
    call, _ = await started(channel)
    messages = [f"m-{index}" for index in range(6)]

    async def send(message_id: str) -> None:
        for item in progress(message_id):  # one after another: the order is known
            await ingest(channel, item)

    await asyncio.gather(*(send(message_id) for message_id in messages))
    await ingest(channel, *progress("m-0"))  # duplicates are no changes
    changes = await read_changes(call, 4 * len(messages))
    assert by_message(changes) == {message_id: list(PROGRESS) for message_id in messages}
    assert all(change.resume_token for change in changes)
    final = {
        change.report.message_id: change.message_status.status
        for change in changes
        if change.report.status == DELIVERED
    }
    assert set(final.values()) == {DELIVERED}
    follow = await read(call)  # nothing more: the next response is a heartbeat
    assert not follow.HasField("message_status")
    call.cancel()


async def test_filters_select_changes(channel: grpc.aio.Channel) -> None:
    delivered_only, _ = await started(channel, statuses=[DELIVERED])
    plivo_only, _ = await started(channel, provider="plivo")
    by_ref, _ = await started(channel, client_ref="ref-2", account="eu")
    await ingest(
        channel,
        report("a", SENT, event_offset=1),
        report("b", DELIVERED, provider="plivo"),
        report("c", DELIVERED, account="eu", client_ref="ref-2"),
        report("d", SENT, account="eu", client_ref="ref-1"),
    )
    got = await read_changes(delivered_only, 2)
    assert sorted(change.report.message_id for change in got) == ["b", "c"]
    got = await read_changes(plivo_only, 1)
    assert [change.report.message_id for change in got] == ["b"]
    got = await read_changes(by_ref, 1)
    assert [change.report.message_id for change in got] == ["c"]
    for call in (delivered_only, plivo_only, by_ref):
        assert not (await read(call)).HasField("message_status")
        call.cancel()


async def test_heartbeats_carry_fresh_tokens(channel: grpc.aio.Channel) -> None:
    call, first = await started(channel)
    await ingest(channel, report("h-1"))
    change = (await read_changes(call, 1))[0]
    beats = [await read(call) for _ in range(3)]
    assert all(not beat.HasField("message_status") for beat in beats)
    assert beats[0].resume_token != first.resume_token  # it moved past the change
    resumed = watch(channel, resume_token=beats[-1].resume_token)
    await read(resumed)  # the heartbeat naming the start
    await ingest(channel, report("h-2"))
    assert [item.report.message_id for item in await read_changes(resumed, 1)] == ["h-2"]
    assert change.report.message_id == "h-1"
    for open_call in (call, resumed):
        open_call.cancel()


async def test_disconnect_and_resume_under_concurrent_ingests(channel: grpc.aio.Channel) -> None:
    """Writers keep ingesting new and updated messages while a subscriber disconnects again
    and again and resumes from its last token: every change arrives exactly once, in order
    per message."""
    rng = random.Random(4)
    messages = [f"r-{index}" for index in range(40)]

    async def writer(mine: list[str]) -> None:
        for message_id in mine:
            for item in progress(message_id):
                await ingest(channel, item)

    call, first = await started(channel)
    token = first.resume_token
    received: list[Response] = []
    writing = asyncio.gather(*(writer(messages[index::8]) for index in range(8)))
    while len(received) < 4 * len(messages):
        take = rng.randint(1, 15)
        while take and len(received) < 4 * len(messages):
            response = await read(call)
            token = response.resume_token
            if response.HasField("message_status"):
                received.append(response)
                take -= 1
        call.cancel()
        call = watch(channel, resume_token=token)
    await writing
    event_ids = [change.report.event_id for change in received]
    assert len(set(event_ids)) == len(event_ids) == 4 * len(messages)
    assert by_message(received) == {message_id: list(PROGRESS) for message_id in messages}
    call.cancel()


async def test_resume_replays_what_was_missed_then_follows(channel: grpc.aio.Channel) -> None:
    call, first = await started(channel)
    call.cancel()
    for index in range(30):  # more than one replay batch would need; all while away
        await ingest(channel, report(f"away-{index}"))
    resumed = watch(channel, resume_token=first.resume_token)
    replayed = await read_changes(resumed, 30)
    assert [change.report.message_id for change in replayed] == [f"away-{i}" for i in range(30)]
    await ingest(channel, report("live-1"))
    assert [change.report.message_id for change in await read_changes(resumed, 1)] == ["live-1"]
    resumed.cancel()


async def test_resume_token_from_the_start_replays_everything(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    call, first = await started(channel)  # the store is empty: the token names "the start"
    call.cancel()
    statusd.hub.batch = 3  # replay and join in several small batches
    await ingest(channel, *[report(f"s-{index}") for index in range(10)])
    resumed = watch(channel, resume_token=first.resume_token, provider="infobip")
    got = await read_changes(resumed, 10)
    assert [change.report.message_id for change in got] == [f"s-{index}" for index in range(10)]
    resumed.cancel()


@pytest.mark.parametrize("token", ["not-a-token", "AAAA", ""])
async def test_bad_resume_tokens_are_invalid_argument(
    channel: grpc.aio.Channel, token: str
) -> None:
    call = watch(channel, resume_token=token or "x" * 40)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_token" in (caught.value.details() or "")


async def test_a_page_token_is_no_resume_token(channel: grpc.aio.Channel) -> None:
    await ingest(channel, report("p-1"), report("p-2"))
    page = await status_stub(channel).ListMessageStatuses(
        status_pb.ListMessageStatusesRequest(page_size=1)
    )
    call = watch(channel, resume_token=page.next_page_token)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_invalid_filter_is_rejected(channel: grpc.aio.Channel) -> None:
    call = watch(channel, statuses=[pb.DELIVERY_STATUS_UNSPECIFIED])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "statuses[0]" in (caught.value.details() or "")


async def drain(call: WatchCall) -> tuple[list[str], str, grpc.aio.AioRpcError]:
    """Reads until the stream fails: the message ids it carried, the last token, the error."""
    delivered: list[str] = []
    token = ""
    while True:
        try:
            response = await read(call)
        except grpc.aio.AioRpcError as error:
            return delivered, token, error
        token = response.resume_token
        if response.HasField("message_status"):
            delivered.append(response.report.message_id)


async def test_a_stalled_subscriber_is_cut_off_and_nothing_else_waits(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    """One subscriber never reads: every ingest completes, the other subscriber gets every
    change, and the stalled one ends with RESOURCE_EXHAUSTED after what it was sent;
    resuming from its last token then yields the rest, none twice."""
    writers, each = 4, 50
    total = writers * each
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{statusd.port}", options=STALLING_OPTIONS
    ) as stalling:
        stalled = watch(stalling)
        await read(stalled)
        healthy, _ = await started(channel)

        async def writer(number: int) -> int:
            stored = 0
            for index in range(each):
                stored += (await ingest(channel, report(f"s-{number}-{index}"))).stored
            return stored

        assert sum(await asyncio.gather(*(writer(number) for number in range(writers)))) == total
        assert len(await read_changes(healthy, total)) == total
        delivered, token, error = await drain(stalled)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resume" in (error.details() or "")
        assert 0 < len(delivered) < total
    resumed = watch(channel, resume_token=token)
    rest = await read_changes(resumed, total - len(delivered))
    everything = delivered + [change.report.message_id for change in rest]
    assert sorted(everything) == sorted(
        f"s-{number}-{index}" for number in range(writers) for index in range(each)
    )
    resumed.cancel()
    healthy.cancel()


async def test_the_hub_reads_once_per_wake_up_not_per_subscriber(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    calls = [(await started(channel))[0] for _ in range(10)]
    before = statusd.hub.reads
    for index in range(20):
        await ingest(channel, report(f"w-{index}"))
    for call in calls:
        assert len(await read_changes(call, 20)) == 20
    reads = statusd.hub.reads - before
    assert reads < 2 * 20 + 10  # one read per commit (plus polls), not one per subscriber
    for call in calls:
        call.cancel()


async def test_watchers_gauge_follows_open_streams(channel: grpc.aio.Channel) -> None:
    base = metrics.WATCHERS._value.get()
    cancelled = metrics.GRPC_HANDLED.labels("WatchMessageStatuses", "CANCELLED")
    cancelled_before = cancelled._value.get()
    calls = [(await started(channel))[0] for _ in range(3)]
    await gauge_settles(base + 3)
    for call in calls:
        call.cancel()
    await gauge_settles(base)
    assert cancelled._value.get() == cancelled_before + 3


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


async def when_available(channel: grpc.aio.Channel, resume_token: str = "") -> WatchCall:
    """A watch opened once statusd stops answering UNAVAILABLE (as the client retries)."""
    for _ in range(200):
        call = watch(channel, resume_token=resume_token)
        try:
            await read(call)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(0.05)
        else:
            return call
    raise AssertionError("Watch stayed unavailable")


class TroubledStore(SqliteStore):
    """A store whose change reads fail on demand."""

    fail: Exception | None = None

    async def changes(self, query: MessageFilter, *, after: str | None, limit: int) -> list[Change]:
        if self.fail is not None:
            raise self.fail
        return await super().changes(query, after=after, limit=limit)

    async def last_position(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return await super().last_position()


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

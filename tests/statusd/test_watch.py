"""WatchMessageStatuses over real gRPC: order, filters, resume, heartbeats, slow subscribers
(statusd/watch.py; statusd/metrics.py's watchers gauge and handled counter, read as /metrics
shows them)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd.server import Statusd
from tests.helpers.odd_stores import store_for
from tests.helpers.reports import report
from tests.helpers.rpc import STALLING_OPTIONS, ingest, read, read_changes, status_stub, watch
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.watching import drain, started

ACCEPTED = pb.DELIVERY_STATUS_ACCEPTED
SENT = pb.DELIVERY_STATUS_SENT
DELIVERED = pb.DELIVERY_STATUS_DELIVERED
PROGRESS = (ACCEPTED, pb.DELIVERY_STATUS_QUEUED, SENT, DELIVERED)

Response = status_pb.WatchMessageStatusesResponse


@pytest.fixture(params=["sqlite", "now-naming"])
async def statusd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Statusd]:
    # The test's clients share statusd's event loop, so the loop's CPU time is mostly theirs:
    # no CPU share for Watch writes here (test_watch_limits checks the turns themselves).
    settings = statusd_settings(
        tmp_path, watch_heartbeat_seconds=0.2, watch_queue_size=128, watch_cpu_share=1.0
    )
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


def sample(name: str, **labels: str) -> float:
    """A metric's value as /metrics would show it (0 before it was first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def gauge_settles(value: float) -> None:
    for _ in range(200):
        if sample("dlrhub_watchers") == value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"dlrhub_watchers is {sample('dlrhub_watchers')}, not {value}")


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


async def test_commits_without_a_stream_read_nothing_and_a_new_stream_starts_after_them(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    """With no live stream a commit only marks the hub's position behind; the next stream
    reads the store's "now" first, so it starts with the next change, not an earlier one."""
    call, _ = await started(channel)
    call.cancel()
    await gauge_settles(0)
    before = statusd.hub.reads
    for index in range(10):
        await ingest(channel, report(f"unwatched-{index}"))
    assert statusd.hub.reads - before <= 2  # polls at most, not one read per commit
    call, first = await started(channel)
    await ingest(channel, report("watched"))
    assert [change.report.message_id for change in await read_changes(call, 1)] == ["watched"]
    call.cancel()
    resumed = watch(channel, resume_token=first.resume_token)  # its token names "now"
    assert [change.report.message_id for change in await read_changes(resumed, 1)] == ["watched"]
    resumed.cancel()


async def test_watchers_gauge_follows_open_streams(channel: grpc.aio.Channel) -> None:
    base = sample("dlrhub_watchers")
    cancelled = {
        "grpc_type": "server_stream",
        "grpc_service": "dlrhub.v1.StatusService",
        "grpc_method": "WatchMessageStatuses",
        "grpc_code": "CANCELLED",
    }
    cancelled_before = sample("grpc_server_handled_total", **cancelled)
    calls = [(await started(channel))[0] for _ in range(3)]
    await gauge_settles(base + 3)
    for call in calls:
        call.cancel()
    await gauge_settles(base)
    assert sample("grpc_server_handled_total", **cancelled) == cancelled_before + 3

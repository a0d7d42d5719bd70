"""DlrhubClient against a real statusd on loopback: reads, paging, retries, resumable Watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from dlrhub.client import Backoff, DlrhubClient, DlrhubError, Watch, registration
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd.server import Statusd
from statusd.storage.sqlite import SqliteStore
from tests.helpers.processes import free_port
from tests.helpers.reports import filled, report
from tests.helpers.rpc import STALLING_OPTIONS, ingest
from tests.helpers.servers import running_statusd, statusd_settings

DELIVERED = pb.DELIVERY_STATUS_DELIVERED
SENT = pb.DELIVERY_STATUS_SENT
QUICK = Backoff(attempts=100, initial=0.02, maximum=0.2)


@pytest.fixture
async def stored(channel: grpc.aio.Channel) -> grpc.aio.Channel:
    await ingest(
        channel,
        *[report(f"c-{index}", (SENT, DELIVERED)[index % 2]) for index in range(10)],
        report("other", provider="plivo", account="eu"),
    )
    return channel


@pytest.fixture
async def client(statusd: Statusd) -> AsyncIterator[DlrhubClient]:
    async with DlrhubClient(f"127.0.0.1:{statusd.port}", backoff=QUICK) as opened:
        yield opened


async def test_get_and_batch_get(stored: grpc.aio.Channel, client: DlrhubClient) -> None:
    found = await client.get("infobip", "c-1", full=True)
    assert found is not None
    assert found.status == DELIVERED
    assert len(found.history) == 1
    assert await client.get("infobip", "nope") is None
    keys = [("plivo", "eu", "other"), *(("infobip", "", f"n-{i}") for i in range(1500))]
    keys.append(("infobip", "", "c-3"))  # beyond the first 1000: a second call
    assert [item.message_id for item in await client.batch_get(keys)] == ["other", "c-3"]


async def test_list_iterates_every_page(stored: grpc.aio.Channel, client: DlrhubClient) -> None:
    every = [item.message_id async for item in client.list(page_size=3)]
    assert every == [f"c-{index}" for index in range(10)] + ["other"]
    delivered = [
        item.message_id
        async for item in client.list(provider="infobip", statuses=["delivered"], page_size=2)
    ]
    assert delivered == ["c-1", "c-3", "c-5", "c-7", "c-9"]
    assert [item.message_id async for item in client.list(account="eu")] == ["other"]
    with pytest.raises(ValueError, match="unknown status"):
        [item async for item in client.list(statuses=["sent-ish"])]


async def test_errors_other_than_unavailable_are_not_retried(client: DlrhubClient) -> None:
    with pytest.raises(DlrhubError) as caught:
        await client.get("", "m")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "provider" in caught.value.details


async def test_unary_calls_retry_until_statusd_is_up(tmp_path: Path) -> None:
    port = free_port()
    async with DlrhubClient(f"127.0.0.1:{port}", backoff=Backoff(attempts=1)) as impatient:
        with pytest.raises(DlrhubError) as caught:
            await impatient.get("infobip", "m-1")
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    async with DlrhubClient(f"127.0.0.1:{port}", backoff=QUICK, timeout=2) as patient:
        pending = asyncio.create_task(patient.get("infobip", "m-1"))
        await asyncio.sleep(0.3)  # let a few attempts fail against the closed port
        assert not pending.done()
        settings = statusd_settings(tmp_path, statusd_port=port)
        # The message is in the store before statusd serves: whichever attempt reaches it
        # first finds it (an ingest after start-up could come after that attempt).
        stored = SqliteStore(settings.sqlite_path)
        await stored.open()
        await stored.commit(filled(report("m-1")))
        await stored.close()
        async with running_statusd(settings):
            found = await asyncio.wait_for(pending, 20)
    assert found is not None
    assert found.message_id == "m-1"


async def test_register_messages_in_calls_of_1000(client: DlrhubClient) -> None:
    submitted = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    batch = [
        registration(
            "infobip",
            f"r-{index}",
            client_ref=f"order-{index}",
            recipient="+14155552671",
            submit_time=submitted,
            report_timeout=timedelta(hours=2),
        )
        for index in range(1500)
    ]
    answer = await client.register_messages([*batch, batch[0]])  # one twice: DUPLICATE
    assert (answer.registered, answer.duplicates, len(answer.outcomes)) == (1500, 1, 1501)
    assert answer.outcomes[-1] == status_pb.REGISTRATION_OUTCOME_DUPLICATE
    found = await client.get("infobip", "r-1499")
    assert found is not None
    assert (found.status, found.report_count, found.client_ref, found.country) == (
        pb.DELIVERY_STATUS_ACCEPTED,
        0,
        "order-1499",
        "US",
    )
    assert found.submit_time.ToDatetime(UTC) == submitted
    assert found.report_deadline_time.ToDatetime(UTC) == submitted + timedelta(hours=2)
    awaiting = [item.message_id async for item in client.list(awaiting_report=True)]
    assert len(awaiting) == 1500
    again = await client.register_messages(batch[:3])  # a retry of what is stored: harmless
    assert (again.registered, again.duplicates) == (0, 3)
    with pytest.raises(DlrhubError) as caught:
        await client.register_messages([registration("nope", "x")])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


async def consume(watch: Watch, count: int, pause: asyncio.Event | None = None) -> list[str]:
    """Message ids of the next ``count`` changes; waits for ``pause`` after the first."""
    seen: list[str] = []
    async for change in watch:
        seen.append(change.report.message_id)
        if pause is not None and len(seen) == 1:
            await pause.wait()
        if len(seen) == count:
            break
    return seen


async def started(
    watch: Watch, count: int, pause: asyncio.Event | None = None
) -> asyncio.Task[list[str]]:
    """Starts consuming and returns once the stream is established (it has a token)."""
    task = asyncio.create_task(consume(watch, count, pause))
    for _ in range(500):
        if watch.resume_token:
            return task
        await asyncio.sleep(0.01)
    raise AssertionError("the watch did not start")


async def test_watch_resumes_across_a_statusd_restart(tmp_path: Path) -> None:
    settings = statusd_settings(tmp_path, statusd_port=free_port())
    first = [f"before-{index}" for index in range(5)]
    second = [f"after-{index}" for index in range(5)]
    async with DlrhubClient(settings.grpc_address, backoff=QUICK) as client:
        watch = client.watch(max_reconnects=500)
        async with running_statusd(settings) as daemon:
            task = await started(watch, len(first) + len(second))
            async with grpc.aio.insecure_channel(settings.grpc_address) as channel:
                for message_id in first:
                    await ingest(channel, report(message_id))
            for _ in range(500):
                if watch.resume_token and daemon.hub.position is not None:
                    break
                await asyncio.sleep(0.01)
        # statusd is down now; it comes back on the same port and store
        async with (
            running_statusd(settings),
            grpc.aio.insecure_channel(settings.grpc_address) as channel,
        ):
            for message_id in second:  # maybe before the client reconnected: replayed then
                await ingest(channel, report(message_id))
            seen = await asyncio.wait_for(task, 30)
    assert seen == first + second
    assert watch.reconnects >= 1


async def test_watch_resumes_after_resource_exhausted(tmp_path: Path) -> None:
    settings = statusd_settings(tmp_path, watch_queue_size=4)
    total = 60
    async with (
        running_statusd(settings) as daemon,
        DlrhubClient(
            f"127.0.0.1:{daemon.port}", backoff=QUICK, channel_options=STALLING_OPTIONS
        ) as client,
    ):
        watch = client.watch(provider="infobip")
        pause = asyncio.Event()
        task = await started(watch, total, pause)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel:
            for index in range(total):  # the consumer pauses after the first: it falls behind
                await ingest(channel, report(f"x-{index:02d}"))
        pause.set()
        seen = await asyncio.wait_for(task, 30)
    assert seen == [f"x-{index:02d}" for index in range(total)]
    assert watch.reconnects >= 1  # it was cut off (RESOURCE_EXHAUSTED) and resumed


async def test_watch_raises_on_errors_it_cannot_resume(client: DlrhubClient) -> None:
    watch = client.watch(statuses=[0])
    with pytest.raises(DlrhubError) as caught:
        await consume(watch, 1)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_delivery_stats(stored: grpc.aio.Channel, client: DlrhubClient) -> None:
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(minutes=1)
    found = await client.delivery_stats(
        start, end, group_by=["provider", "status"], basis="first-seen"
    )
    assert found.total.message_count == 11
    assert [(g.provider, g.status, g.message_count, g.final_count) for g in found.groups] == [
        ("infobip", SENT, 5, 0),
        ("infobip", DELIVERED, 5, 5),
        ("plivo", DELIVERED, 1, 1),
    ]
    assert found.total.delivery_rate == 1.0
    plivo = await client.delivery_stats(start, end, basis="first-seen", account="eu")
    assert plivo.total.message_count == 1
    assert not plivo.groups
    # The default basis is the submit time: these messages were never registered.
    assert (await client.delivery_stats(start, end)).total.message_count == 0
    with pytest.raises(DlrhubError) as refused:
        await client.delivery_stats(end, start)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "end_time" in refused.value.details
    with pytest.raises(ValueError, match="not a dimension"):
        await client.delivery_stats(start, end, group_by=["carrier"])
    with pytest.raises(ValueError, match="not a time basis"):
        await client.delivery_stats(start, end, basis="sent")

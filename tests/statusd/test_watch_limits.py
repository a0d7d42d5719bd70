"""Covers statusd/fanout.py: Watch's bounds over real gRPC, stream caps per client and per
process, resume tokens that name no position (or one the store never had, or no longer
keeps), and the write turns."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from statusd.committer import Quiet
from statusd.cursors import BUILTIN_KEY, CursorCodec
from statusd.fanout import ShareWindow, Subscription, Turns, client_identity
from statusd.server import Statusd
from statusd.storage.base import MessageFilter
from tests.helpers.reports import report
from tests.helpers.rpc import ingest, read, read_changes, watch
from tests.helpers.servers import running_statusd, statusd_settings
from tests.helpers.watching import started

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
async def statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    settings = statusd_settings(
        tmp_path,
        read_tokens="reader-a,reader-b",
        watch_max_streams=5,
        watch_max_streams_per_client=2,
    )
    async with running_statusd(settings) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        yield opened


def stream(channel: grpc.aio.Channel, token: str, resume_token: str = "") -> object:
    request = status_pb.WatchMessageStatusesRequest(resume_token=resume_token)
    return status_grpc.StatusServiceStub(channel).WatchMessageStatuses(
        request, metadata=(("authorization", f"Bearer {token}"),)
    )


async def refusal(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(call)  # type: ignore[arg-type]
    return caught.value


async def admitted(channel: grpc.aio.Channel, token: str) -> object:
    """A stream opened as soon as the cap lets one in (the server sees a cancel a moment
    after the client sends it)."""
    codes = []
    for _ in range(100):
        call = stream(channel, token)
        try:
            await read(call)  # type: ignore[arg-type]
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())
            await asyncio.sleep(0.02)
        else:
            assert set(codes) <= {EXHAUSTED}
            return call
    raise AssertionError(f"the cap never let a new stream in: {codes[-1]}")


async def test_streams_per_token_are_capped(channel: grpc.aio.Channel) -> None:
    mine = [stream(channel, "reader-a") for _ in range(2)]
    for call in mine:
        await read(call)  # type: ignore[arg-type]
    third = await refusal(stream(channel, "reader-a"))
    assert third.code() == EXHAUSTED
    assert "DLRHUB_WATCH_MAX_STREAMS_PER_CLIENT" in (third.details() or "")
    other = stream(channel, "reader-b")  # another token has a bucket of its own
    assert not (await read(other)).HasField("message_status")  # type: ignore[arg-type]
    mine[0].cancel()  # type: ignore[attr-defined]
    again = await admitted(channel, "reader-a")  # the closed stream's place is free again
    for call in (mine[1], other, again):
        call.cancel()  # type: ignore[attr-defined]


async def test_streams_per_process_are_capped(statusd: Statusd) -> None:
    statusd.hub.caps.per_client = 100
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as channel:
        calls = [stream(channel, "reader-a" if index % 2 else "reader-b") for index in range(5)]
        for call in calls:
            await read(call)  # type: ignore[arg-type]
        sixth = await refusal(stream(channel, "reader-b"))
        assert sixth.code() == EXHAUSTED
        assert "DLRHUB_WATCH_MAX_STREAMS" in (sixth.details() or "")
        assert statusd.hub.caps.total == 5
        for call in calls:
            call.cancel()  # type: ignore[attr-defined]


def test_without_a_token_the_client_is_the_peer_address() -> None:
    assert client_identity((), "ipv4:10.0.0.7:51234") == "peer:10.0.0.7"
    assert client_identity((), "ipv6:[::1]:4000") == "peer:::1"
    token = client_identity((("authorization", "Bearer s3cret"),), "ipv4:10.0.0.7:1")
    assert token.startswith("token:")
    assert "s3cret" not in token
    assert token == client_identity((("authorization", "Bearer s3cret"),), "ipv4:10.0.0.8:2")


@pytest.fixture
async def open_statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    async with running_statusd(statusd_settings(tmp_path)) as daemon:
        yield daemon


@pytest.mark.parametrize("payload", [{"p": ""}, {"p": None}, {}, {"p": 7}])
async def test_a_resume_token_without_a_position_is_refused(
    open_statusd: Statusd, payload: dict[str, object]
) -> None:
    """Signed with the built-in key (anyone can make one): it must not replay the log."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{open_statusd.port}") as channel:
        await ingest(channel, report("old-1"), report("old-2"))
        forged = CursorCodec([BUILTIN_KEY]).encode("resume", payload)
        error = await refusal(watch(channel, resume_token=forged))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("resume_token: ")


async def test_a_resume_token_past_the_newest_change_is_refused(open_statusd: Statusd) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{open_statusd.port}") as channel:
        await ingest(channel, report("one"))
        for position in ("999", "abc", "-1"):
            forged = CursorCodec([BUILTIN_KEY]).encode("resume", {"p": position})
            error = await refusal(watch(channel, resume_token=forged))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, position
            assert "resume_token: " in (error.details() or "")


async def test_undecodable_token_content_is_invalid_argument(open_statusd: Statusd) -> None:
    codec = CursorCodec([BUILTIN_KEY])
    body = bytes([1]) + b"{not json"
    raw = body + codec._mac(codec.keys[0], "resume", body)
    forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{open_statusd.port}") as channel:
        error = await refusal(watch(channel, resume_token=forged))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_resume_token_from_before_a_purge_is_out_of_range(open_statusd: Statusd) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{open_statusd.port}") as channel:
        call, first = await started(channel)
        await ingest(channel, report("gone-1"), report("gone-2"))
        early = (await read_changes(call, 1))[0].resume_token
        call.cancel()
        assert await open_statusd.store.purge(time.time_ns() // 1000 + 10**9) == 2
        await ingest(channel, report("kept"))
        for token in (first.resume_token, early):
            error = await refusal(watch(channel, resume_token=token))
            assert error.code() == grpc.StatusCode.OUT_OF_RANGE
            assert "purged" in (error.details() or "")


async def test_turns_bound_concurrent_writers_and_wait_for_quiet() -> None:
    quiet = Quiet()
    quiet.clear()
    turns = Turns(concurrency=3, quiet=quiet, max_wait=0.5)
    turns.start()
    writers = [Subscription(MessageFilter()) for _ in range(10)]
    try:
        for writer in writers:
            turns.enqueue(writer)
        await asyncio.sleep(0.1)
        assert turns.granted == 0  # a commit is pending: no write starts (up to max_wait)
        quiet.set()
        await asyncio.sleep(0.05)
        assert sum(writer.holding for writer in writers) == 3
        for writer in writers[:3]:
            turns.done(writer)
        await asyncio.sleep(0.05)
        assert sum(writer.holding for writer in writers) == 3
        assert turns.granted == 6
        quiet.clear()  # commits all the time: each turn waits at most max_wait
        for writer in writers[3:6]:
            turns.done(writer)
        started_at = time.monotonic()
        await asyncio.sleep(0.3)
        assert turns.granted == 6  # still waiting for a quiet moment
        for _ in range(300):
            if turns.granted == 9:
                break
            await asyncio.sleep(0.01)
        assert turns.granted == 9
        assert time.monotonic() - started_at >= 0.45 * 3
    finally:
        await turns.stop()


async def granted_in(share: float, quiet: Quiet | None = None) -> tuple[int, int]:
    """Turns given to one writer that burns 2 ms of the loop's CPU in each, over 0.3 s, and
    the scheduler's pauses for the CPU share meanwhile (counted after its first window; one
    light window is enough to lift the share here)."""
    turns = Turns(concurrency=1, cpu_share=share, max_wait=0.005, quiet=quiet, light_windows=1)
    turns.start()
    writer = Subscription(MessageFilter())
    started_at = time.monotonic()
    deadline = started_at + 0.3
    paused_before = None
    try:
        while time.monotonic() < deadline:
            if paused_before is None and time.monotonic() - started_at > 0.11:
                paused_before = turns.paused
            turns.enqueue(writer)
            while not writer.holding:
                await writer.wait()
            spin = time.thread_time() + 0.002  # a turn's work: 2 ms of CPU
            while time.thread_time() < spin:
                pass
            turns.done(writer)
    finally:
        await turns.stop()
    return turns.granted, turns.paused - (paused_before or 0)


async def test_turns_pause_above_their_cpu_share() -> None:
    """Writers that burn the loop's CPU in every turn get fewer turns under a small share."""

    full, _ = await granted_in(1.0)
    small, paused = await granted_in(0.05)  # small: this machine may be busy with more
    assert paused > 0
    assert small < full / 2


async def test_while_ingestion_is_idle_watch_may_use_the_time_it_leaves() -> None:
    """With the committer's Quiet set throughout, only the first window (before one was
    seen) holds turns to the share; after it, turns are given as fast as they are used."""
    full, _ = await granted_in(1.0)
    idle, paused = await granted_in(0.05, Quiet())
    assert paused == 0
    assert idle > full / 2


def test_one_busy_window_caps_again_and_only_a_run_of_light_ones_lifts_the_cap() -> None:
    """Ingestion busy half of a window or more caps the next at once; the cap lifts only
    after light_windows light windows in a row (a flood's short lulls do not lift it)."""
    window = ShareWindow(0.0, 0.0, 0.0, light_windows=3)
    busy, now = 0.0, 0.0
    capped = []
    for spell in (0.01, 0.01, 0.06, 0.01, 0.01, 0.01, 0.01, 0.07, 0.0):  # of each 0.1 s
        busy, now = busy + spell, now + 0.1
        window.renew(now, 0.0, busy)
        capped.append(window.capped)
    assert capped == [True, True, True, True, True, False, False, True, True]
    unknown = ShareWindow(0.0, 0.0, None, light_windows=1)
    unknown.renew(0.1, 0.0, None)
    assert unknown.capped  # no Quiet to ask: always capped


async def test_while_ingestion_is_busy_the_share_holds() -> None:
    """Ingestion busy all along (its Quiet clear): turns still come (each after max_wait),
    and the share caps them as without a Quiet."""
    busy = Quiet()
    busy.clear()
    small, paused = await granted_in(0.05, busy)
    full, _ = await granted_in(1.0, busy)
    assert paused > 0
    assert small < full / 2

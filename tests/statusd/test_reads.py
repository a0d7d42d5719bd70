"""statusd.reads: ListMessageStatuses and BatchGetMessageStatuses over real gRPC, page
tokens, filters, and the multipart read through :class:`~statusd.reads.Reader` (the
aggregate over gRPC is in test_multipart.py; resume tokens in test_watch.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import grpc
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd.cursors import CursorCodec
from statusd.errors import InvalidArgument
from statusd.reads import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PARTS, PARTS_PAGE, Reader, page_size
from statusd.storage.sqlite import SqliteStore
from tests.helpers.reports import filled, key, report
from tests.helpers.rpc import ingest, status_stub
from tests.helpers.servers import running_statusd, statusd_settings

SENT = pb.DELIVERY_STATUS_SENT
DELIVERED = pb.DELIVERY_STATUS_DELIVERED
FAILED = pb.DELIVERY_STATUS_FAILED

ListRequest = status_pb.ListMessageStatusesRequest


async def list_page(
    channel: grpc.aio.Channel, **fields: object
) -> status_pb.ListMessageStatusesResponse:
    return await status_stub(channel).ListMessageStatuses(ListRequest(**fields))  # type: ignore[arg-type]


async def list_all(
    channel: grpc.aio.Channel, request: ListRequest, pages: list[int] | None = None
) -> list[pb.MessageStatus]:
    found: list[pb.MessageStatus] = []
    while True:
        response = await status_stub(channel).ListMessageStatuses(request)
        found.extend(response.message_statuses)
        if pages is not None:
            pages.append(len(response.message_statuses))
        if not response.next_page_token:
            return found
        request.page_token = response.next_page_token


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def test_page_size_rules() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE == 100
    assert page_size(7) == 7
    assert page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE == 1000
    with pytest.raises(InvalidArgument, match="page_size"):
        page_size(-1)


async def test_page_size_default_clamp_and_negative(channel: grpc.aio.Channel) -> None:
    await ingest(channel, *[report(f"m-{index:04d}") for index in range(1005)])
    default = await list_page(channel)
    assert len(default.message_statuses) == 100
    assert default.next_page_token
    clamped = await list_page(channel, page_size=5000)
    assert len(clamped.message_statuses) == 1000
    assert clamped.next_page_token
    last = await list_page(channel, page_size=5000, page_token=clamped.next_page_token)
    assert [item.message_id for item in last.message_statuses] == [
        f"m-{index:04d}" for index in range(1000, 1005)
    ]
    assert last.next_page_token == ""
    error = await refused(list_page(channel, page_size=-1))
    assert "page_size" in (error.details() or "")


async def test_order_is_first_seen_and_pages_never_overlap(channel: grpc.aio.Channel) -> None:
    await ingest(channel, *[report(f"o-{index}", SENT) for index in range(10)])
    await ingest(channel, report("o-3", DELIVERED, event_offset=5))  # an update keeps its place
    pages: list[int] = []
    found = await list_all(channel, ListRequest(page_size=3), pages)
    assert [item.message_id for item in found] == [f"o-{index}" for index in range(10)]
    assert pages == [3, 3, 3, 1]
    assert found[3].status == DELIVERED


async def test_a_token_is_refused_with_another_filter_or_altered(
    channel: grpc.aio.Channel,
) -> None:
    await ingest(channel, *[report(f"t-{index}", DELIVERED) for index in range(5)])
    first = await list_page(channel, page_size=2, statuses=[DELIVERED], provider="infobip")
    token = first.next_page_token
    assert token
    same = await list_page(
        channel,
        page_size=3,
        statuses=[DELIVERED],
        provider="infobip",
        page_token=token,
        view=pb.MESSAGE_STATUS_VIEW_FULL,
    )  # page size and view may change
    assert [item.message_id for item in same.message_statuses] == ["t-2", "t-3", "t-4"]
    others: list[dict[str, object]] = [
        {"statuses": [SENT], "provider": "infobip"},
        {"statuses": [DELIVERED], "provider": "plivo"},
        {"statuses": [DELIVERED]},
        {},
        {"statuses": [DELIVERED], "provider": "infobip", "client_ref": "x"},
    ]
    for other in others:
        error = await refused(list_page(channel, page_size=2, page_token=token, **other))
        assert "different filter" in (error.details() or "")
    altered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    error = await refused(
        list_page(
            channel, page_size=2, statuses=[DELIVERED], provider="infobip", page_token=altered
        )
    )
    assert "page_token" in (error.details() or "")


async def test_tokens_need_the_same_signing_keys(tmp_path: Path) -> None:
    async def first_token(keys: str, directory: Path) -> tuple[str, int]:
        settings = statusd_settings(directory, token_signing_keys=keys)
        async with (
            running_statusd(settings) as daemon,
            grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
        ):
            await ingest(channel, report("k-1"), report("k-2"))
            return (await list_page(channel, page_size=1)).next_page_token, daemon.port

    token, _ = await first_token("old-key", tmp_path)
    for keys, accepted in (("new-key,old-key", True), ("new-key", False)):
        settings = statusd_settings(tmp_path, token_signing_keys=keys)
        async with (
            running_statusd(settings) as daemon,
            grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
        ):
            call = list_page(channel, page_size=1, page_token=token)
            if accepted:
                assert [item.message_id for item in (await call).message_statuses] == ["k-2"]
            else:
                await refused(call)


async def test_filters_combine(channel: grpc.aio.Channel) -> None:
    made = []
    for index in range(24):
        made.append(
            report(
                f"f-{index}",
                (SENT, DELIVERED, FAILED)[index % 3],
                provider=("infobip", "plivo")[index % 2],
                account=("", "eu")[index // 12],
                client_ref=f"ref-{index % 4}",
                recipient=f"+4179000000{index % 5}",
            )
        )
    for item in made:
        await ingest(channel, item)
    everything = await list_all(channel, ListRequest(page_size=1000))
    assert len(everything) == 24
    middle = everything[12].update_time
    cases: list[dict[str, object]] = [
        {"provider": "plivo"},
        {"provider": "plivo", "statuses": [DELIVERED, FAILED]},
        {"account": "eu", "client_ref": "ref-1"},
        {"recipient": "+41790000002", "statuses": [SENT]},
        {"provider": "infobip", "account": "eu", "statuses": [FAILED], "client_ref": "ref-2"},
        {"update_time_start": middle},
        {"update_time_end": middle, "provider": "infobip"},
    ]
    for fields in cases:
        found = await list_all(channel, ListRequest(page_size=2, **fields))  # type: ignore[arg-type]
        expected = [item.message_id for item in everything if passes(item, fields)]
        assert [item.message_id for item in found] == expected, fields
        assert expected, fields  # each case selects something, and not everything
        assert len(expected) < 24, fields


def passes(item: pb.MessageStatus, fields: dict[str, object]) -> bool:
    for name, wanted in fields.items():
        if name == "statuses":
            if item.status not in wanted:  # type: ignore[operator]
                return False
        elif name == "update_time_start":
            if item.update_time.ToMicroseconds() < wanted.ToMicroseconds():  # type: ignore[attr-defined]
                return False
        elif name == "update_time_end":
            if item.update_time.ToMicroseconds() >= wanted.ToMicroseconds():  # type: ignore[attr-defined]
                return False
        elif getattr(item, name) != wanted:
            return False
    return True


async def test_bad_filters_name_the_field(channel: grpc.aio.Channel) -> None:
    error = await refused(list_page(channel, statuses=[SENT, 0]))
    assert "statuses[1]" in (error.details() or "")
    late, early = ListRequest(), ListRequest()
    late.update_time_start.FromMicroseconds(2_000_000)
    late.update_time_end.FromMicroseconds(1_000_000)
    error = await refused(status_stub(channel).ListMessageStatuses(late))
    assert "update_time_end" in (error.details() or "")
    assert early.page_size == 0


async def test_paging_while_reports_keep_arriving(channel: grpc.aio.Channel) -> None:
    """Every message that existed before the first page appears exactly once, however many
    new and updated messages arrive while the client pages (here: between every two pages,
    new messages and updates of existing ones are committed)."""
    existing = [f"e-{index}" for index in range(300)]
    await ingest(channel, *[report(message_id, SENT) for message_id in existing])
    seen: list[str] = []
    request = ListRequest(page_size=7)
    pages = 0
    while True:
        response = await status_stub(channel).ListMessageStatuses(request)
        seen.extend(item.message_id for item in response.message_statuses)
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
        pages += 1
        updated = existing[(pages * 37) % 300]
        news = [report(f"new-{pages}-{part}") for part in range(3)]
        await asyncio.gather(
            ingest(channel, *news),
            ingest(channel, report(updated, DELIVERED, event_offset=pages)),
        )
    counts = Counter(seen)
    assert all(counts[message_id] == 1 for message_id in existing)
    assert max(counts.values()) == 1  # the new messages too: none twice
    assert pages > 300 // 7  # more pages than the listing had when it started


async def test_batch_get_keeps_order_and_omits_unknown(channel: grpc.aio.Channel) -> None:
    await ingest(channel, report("b-1"), report("b-2", provider="plivo", account="eu"))
    keys = [
        pb.MessageKey(provider="plivo", account="eu", message_id="b-2"),
        pb.MessageKey(provider="infobip", message_id="missing"),
        pb.MessageKey(provider="infobip", message_id="b-1"),
    ]
    response = await status_stub(channel).BatchGetMessageStatuses(
        status_pb.BatchGetMessageStatusesRequest(keys=keys, view=pb.MESSAGE_STATUS_VIEW_FULL)
    )
    assert [item.message_id for item in response.message_statuses] == ["b-2", "b-1"]
    assert len(response.message_statuses[0].history) == 1


async def test_batch_get_limits_and_validates_keys(channel: grpc.aio.Channel) -> None:
    stub = status_stub(channel)
    many = [pb.MessageKey(provider="infobip", message_id=f"k-{index}") for index in range(1000)]
    fine = await stub.BatchGetMessageStatuses(status_pb.BatchGetMessageStatusesRequest(keys=many))
    assert list(fine.message_statuses) == []
    many.append(pb.MessageKey(provider="infobip", message_id="one-too-many"))
    error = await refused(
        stub.BatchGetMessageStatuses(status_pb.BatchGetMessageStatusesRequest(keys=many))
    )
    assert "keys" in (error.details() or "")
    assert "1000" in (error.details() or "")
    bad = [pb.MessageKey(provider="infobip", message_id="x"), pb.MessageKey(message_id="y")]
    error = await refused(
        stub.BatchGetMessageStatuses(status_pb.BatchGetMessageStatusesRequest(keys=bad))
    )
    assert "keys[1].provider" in (error.details() or "")


async def test_a_parent_read_pages_through_its_parts_up_to_the_limit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.open()
    try:
        parts = []
        for index in range(MAX_PARTS + 10):  # more than one page, and more than the limit
            part = report(f"part-{index:03d}", SENT)
            part.parent_message_id, part.part_index = "whole", index + 1
            parts.append(part)
        await store.commit(filled(*parts, report("single", DELIVERED)))
        reader = Reader(store, CursorCodec([b"a key of this test"]))
        whole = await reader.get(key("whole"), full=False)
        assert whole is not None
        assert whole.status == SENT
        assert len(whole.parts) == MAX_PARTS > PARTS_PAGE
        assert whole.parts[0].message_id == "part-000"
        single = await reader.get(key("single"), full=False)
        assert single is not None
        assert (single.status, list(single.parts)) == (DELIVERED, [])
        assert await reader.get(key("nothing"), full=False) is None
        assert await reader.read_parent(key("single"), full=False) is None
    finally:
        await store.close()

"""RegisterMessages over real gRPC on a real SQLite file: a registered message reads as
ACCEPTED with no report, registration and reports merge in either order, registering again
changes nothing, bad registrations are INVALID_ARGUMENT naming the field; and the validation
and completion of one registration (statusd.registrations)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd import errors, model
from statusd.committer import GroupCommitter
from statusd.registrations import checked_registration, normalized_recipient, observe_receipts
from statusd.server import Statusd
from statusd.storage.sqlite import SqliteStore
from tests.helpers.reports import BASE_MICROS, filled, report
from tests.helpers.rpc import ingest, read, read_changes, status_stub, watch
from tests.helpers.servers import running_statusd, statusd_settings

HOUR = 3_600_000_000
REGISTERED = status_pb.REGISTRATION_OUTCOME_REGISTERED
DUPLICATE = status_pb.REGISTRATION_OUTCOME_DUPLICATE


def registration(message_id: str = "m-1", **values: object) -> pb.MessageRegistration:
    made = pb.MessageRegistration(
        provider=str(values.pop("provider", "infobip")),
        message_id=message_id,
        client_ref=str(values.pop("client_ref", "order-1")),
        recipient=str(values.pop("recipient", "+447700900123")),
    )
    if values.pop("submit_time", BASE_MICROS) is not None:
        made.submit_time.FromMicroseconds(BASE_MICROS)
    for name, value in values.items():
        setattr(made, name, value)
    return made


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    settings = statusd_settings(
        tmp_path, report_timeout_hours=72, report_timeout_hours_by_provider="twilio=24"
    )
    daemon: Statusd
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as opened,
    ):
        yield opened


async def register(
    channel: grpc.aio.Channel, *registrations: pb.MessageRegistration
) -> status_pb.RegisterMessagesResponse:
    request = status_pb.RegisterMessagesRequest(registrations=registrations)
    return await status_stub(channel).RegisterMessages(request)


async def get(channel: grpc.aio.Channel, message_id: str = "m-1") -> pb.MessageStatus:
    request = status_pb.GetMessageStatusRequest(
        provider="infobip", message_id=message_id, view=pb.MESSAGE_STATUS_VIEW_FULL
    )
    return (await status_stub(channel).GetMessageStatus(request)).message_status


async def test_a_registered_message_reads_as_accepted_without_reports(
    channel: grpc.aio.Channel,
) -> None:
    answer = await register(channel, registration(), registration("m-2"))
    assert (answer.registered, answer.duplicates) == (2, 0)
    assert list(answer.outcomes) == [REGISTERED, REGISTERED]
    found = await get(channel)
    assert found.status == pb.DELIVERY_STATUS_ACCEPTED
    assert found.report_count == 0
    assert (found.client_ref, found.recipient, found.country) == (
        "order-1",
        "+447700900123",
        "GB",
    )
    assert model.micros(found.submit_time) == BASE_MICROS
    assert model.micros(found.report_deadline_time) == BASE_MICROS + 72 * HOUR
    assert found.HasField("register_time")
    assert not found.HasField("final_time")
    assert [entry.registration.message_id for entry in found.history] == ["m-1"]


async def test_registering_again_changes_nothing(channel: grpc.aio.Channel) -> None:
    await register(channel, registration())
    before = await get(channel)
    again = await register(channel, registration(client_ref="other"), registration())
    assert list(again.outcomes) == [DUPLICATE, DUPLICATE]
    assert (again.registered, again.duplicates) == (0, 2)
    assert await get(channel) == before


async def test_a_report_then_a_registration_keeps_the_report_and_fills_the_rest(
    channel: grpc.aio.Channel,
) -> None:
    delivered = report(status=pb.DELIVERY_STATUS_DELIVERED, event_offset=60, recipient="")
    await ingest(channel, delivered)
    answer = await register(channel, registration())
    assert list(answer.outcomes) == [REGISTERED]
    found = await get(channel)
    assert found.status == pb.DELIVERY_STATUS_DELIVERED
    assert found.report_count == 1
    assert (found.client_ref, found.recipient, found.country) == (
        "order-1",
        "+447700900123",
        "GB",
    )
    assert model.micros(found.submit_time) == BASE_MICROS
    assert model.micros(found.final_time) == BASE_MICROS + 60_000_000


async def test_a_registration_then_reports(channel: grpc.aio.Channel) -> None:
    await register(channel, registration(client_ref="mine"))
    sent = report(status=pb.DELIVERY_STATUS_SENT, event_offset=5, client_ref="theirs")
    await ingest(channel, sent)
    found = await get(channel)
    assert (found.status, found.report_count, found.client_ref) == (
        pb.DELIVERY_STATUS_SENT,
        1,
        "mine",
    )
    assert not found.HasField("final_time")


async def test_the_per_provider_timeout_and_an_explicit_one(channel: grpc.aio.Channel) -> None:
    explicit = registration("m-2")
    explicit.report_timeout.FromSeconds(90)
    await register(channel, registration("m-1", provider="twilio"), explicit)
    twilio = (
        await status_stub(channel).GetMessageStatus(
            status_pb.GetMessageStatusRequest(provider="twilio", message_id="m-1")
        )
    ).message_status
    assert model.micros(twilio.report_deadline_time) == BASE_MICROS + 24 * HOUR
    assert model.micros((await get(channel, "m-2")).report_deadline_time) == (
        BASE_MICROS + 90_000_000
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (registration(provider="nope"), "registrations[0].provider"),
        (registration(""), "registrations[0].message_id"),
        (registration(recipient="12"), "registrations[0].recipient"),
        (registration(account="a" * 65), "registrations[0].account"),
    ],
)
async def test_a_bad_registration_names_its_field(
    channel: grpc.aio.Channel, bad: pb.MessageRegistration, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(channel, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")


async def test_batch_limits(channel: grpc.aio.Channel) -> None:
    for registrations in ([], [registration(f"m-{i}") for i in range(1001)]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await register(channel, *registrations)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answer = await register(channel, *(registration(f"m-{i}") for i in range(1000)))
    assert answer.registered == 1000


async def test_ingest_refuses_what_only_statusd_sets(channel: grpc.aio.Channel) -> None:
    timed_out = report(status=pb.DELIVERY_STATUS_NO_REPORT)
    carrying = report()
    carrying.registration.CopyFrom(registration())
    for bad in (timed_out, carrying):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await ingest(channel, bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_checked_registration_completes_it() -> None:
    bare = pb.MessageRegistration(
        provider="sinch", message_id="x", recipient="44 7700 900123", client_ref="c"
    )
    done = checked_registration(bare, 0, BASE_MICROS, lambda provider: 5 * HOUR)
    assert done.recipient == "+447700900123"
    assert model.micros(done.submit_time) == BASE_MICROS
    assert model.registration_micros(done) == (BASE_MICROS, BASE_MICROS + 5 * HOUR)


@pytest.mark.parametrize("seconds", [0, -1, 367 * 86_400])
def test_a_report_timeout_out_of_range_is_refused(seconds: int) -> None:
    bad = registration()
    bad.report_timeout.FromSeconds(seconds)
    with pytest.raises(errors.InvalidArgument, match="report_timeout"):
        checked_registration(bad, 3, BASE_MICROS, lambda provider: HOUR)


def test_recipients_are_normalized_with_libphonenumber() -> None:
    assert normalized_recipient("+1 (415) 555-2671", "r") == "+14155552671"
    assert normalized_recipient("", "r") == ""
    with pytest.raises(errors.InvalidArgument, match=r"r\.recipient"):
        normalized_recipient("not a number", "r")


async def test_watch_shows_the_registration_the_timeout_and_the_late_receipt(
    tmp_path: Path,
) -> None:
    """statusd's own sweeper (every 50 ms) times a message out 1 s after its submit time;
    a Watch stream sees the registration, the NO_REPORT and the late receipt as changes."""
    settings = statusd_settings(tmp_path, report_sweep_seconds=0.05)
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        call = watch(channel, provider="infobip")
        await read(call)  # the first heartbeat: the stream is live
        quick = registration(submit_time=None)
        quick.report_timeout.FromSeconds(1)
        await register(channel, quick)
        (registered_change, timed_out) = await read_changes(call, 2)
        assert registered_change.report.HasField("registration")
        assert registered_change.message_status.status == pb.DELIVERY_STATUS_ACCEPTED
        assert timed_out.report.status == pb.DELIVERY_STATUS_NO_REPORT
        assert timed_out.message_status.status == pb.DELIVERY_STATUS_NO_REPORT
        awaiting = await status_stub(channel).ListMessageStatuses(
            status_pb.ListMessageStatusesRequest(awaiting_report=True)
        )
        assert list(awaiting.message_statuses) == []
        await ingest(channel, report(status=pb.DELIVERY_STATUS_DELIVERED))
        (late,) = await read_changes(call, 1)
        assert late.message_status.status == pb.DELIVERY_STATUS_DELIVERED
        assert late.message_status.report_count == 1
        call.cancel()


async def test_list_pages_through_the_messages_awaiting_a_report(
    channel: grpc.aio.Channel,
) -> None:
    await register(channel, *(registration(f"m-{index}") for index in range(5)))
    await ingest(channel, report("m-2", status=pb.DELIVERY_STATUS_DELIVERED))
    stub = status_stub(channel)
    request = status_pb.ListMessageStatusesRequest(awaiting_report=True, page_size=2)
    seen: list[str] = []
    while True:
        page = await stub.ListMessageStatuses(request)
        seen += [item.message_id for item in page.message_statuses]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert seen == ["m-0", "m-1", "m-3", "m-4"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # the token belongs to its filter
        await stub.ListMessageStatuses(
            status_pb.ListMessageStatusesRequest(page_token=request.page_token or "x")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def latency_samples(provider: str) -> tuple[float, float]:
    labels = {"provider": provider}
    count = REGISTRY.get_sample_value("dlrhub_receipt_latency_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("dlrhub_receipt_latency_seconds_sum", labels) or 0.0
    return count, total


async def test_receipt_latency_is_observed_in_either_order(tmp_path: Path) -> None:
    """From the submit time to the final report: when the receipt comes after the
    registration, and when the registration comes after the receipt; observed from what the
    commit returned, when the commit returns (nothing is read back)."""
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.open()
    try:
        async with GroupCommitter(store, on_receipts=observe_receipts) as committer:
            before = latency_samples("telnyx")
            await committer.submit([model.registration_entry(stored_registration("t-1"), 0)])
            await committer.submit(filled(report("t-1", provider="telnyx", event_offset=60)))
            await committer.submit(filled(report("t-2", provider="telnyx", event_offset=30)))
            await committer.submit([model.registration_entry(stored_registration("t-2"), 0)])
            sent = report("t-3", provider="telnyx", status=pb.DELIVERY_STATUS_SENT)
            await committer.submit(filled(sent))  # not final: nothing
            count, total = latency_samples("telnyx")
            assert (count - before[0], total - before[1]) == (2, 90)
    finally:
        await store.close()


def stored_registration(message_id: str) -> pb.MessageRegistration:
    made = registration(message_id, provider="telnyx")
    made.report_timeout.FromSeconds(3600)
    return made

"""Multipart aggregation: the rules of each policy, independence from arrival order (property
tests over the model's fold), and GetMessageStatus of a parent id over real gRPC."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from statusd import model, multipart
from tests.helpers.reports import STATUSES, report
from tests.helpers.servers import running_statusd, statusd_settings

#: The statuses by their initials (X: unknown), to keep the tables below short.
A, Q, S, D = model.ACCEPTED, model.QUEUED, model.SENT, model.DELIVERED
U, E, R, F, X = model.UNDELIVERED, model.EXPIRED, model.REJECTED, model.FAILED, model.UNKNOWN


def part_report(
    index: int, status: int, *, count: int = 0, offset: int = 0, final: bool = False
) -> pb.DeliveryReport:
    made = report(f"part-{index}", status, event_offset=offset, final=final)
    made.parent_message_id, made.part_index, made.part_count = "whole", index, count
    return made


def states(reports: list[pb.DeliveryReport]) -> list[pb.MessageStatus]:
    """Each part's MessageStatus as the model folds its reports."""
    folded = model.fold(reports)
    return [
        pb.MessageStatus(
            provider=key[0],
            account=key[1],
            message_id=key[2],
            status=state.status,
            latest_report=state.latest,
            report_count=state.report_count,
            conflict=state.conflict,
        )
        for key, state in folded.items()
    ]


def result(
    *reports: pb.DeliveryReport, policy: multipart.Policy = "worst"
) -> tuple[int, bool, int]:
    aggregate = multipart.aggregate(states(list(reports)), policy)
    return aggregate.status, aggregate.partial, aggregate.part_count


@pytest.mark.parametrize(
    ("statuses", "count", "expected"),
    [
        ((D, D), 2, (D, False, 2)),
        ((D, U), 2, (U, True, 2)),
        ((U, D, R), 3, (R, True, 3)),
        ((E, F, R, U), 0, (F, False, 4)),
        ((D, X), 2, (X, True, 2)),
        ((D, S), 2, (S, True, 2)),
        ((Q, S), 2, (Q, False, 2)),
        ((D,), 2, (A, True, 2)),  # part 2 not reported yet
        ((D, D), 0, (D, False, 2)),  # no count announced: the parts seen
        ((S, U), 3, (U, False, 3)),  # a failure is known before every part is in
    ],
)
def test_worst(statuses: tuple[int, ...], count: int, expected: tuple[int, bool, int]) -> None:
    reports = [part_report(i, status, count=count) for i, status in enumerate(statuses, start=1)]
    assert result(*reports) == expected


@pytest.mark.parametrize(
    ("statuses", "count", "expected"),
    [
        ((D, U), 2, (D, True, 2)),
        ((D, D), 2, (D, False, 2)),
        ((D,), 3, (D, True, 3)),
        ((U, S), 2, (U, False, 2)),
    ],
)
def test_any_delivered(
    statuses: tuple[int, ...], count: int, expected: tuple[int, bool, int]
) -> None:
    reports = [part_report(i, status, count=count) for i, status in enumerate(statuses, start=1)]
    assert result(*reports, policy="any_delivered") == expected


def test_a_final_word_on_a_non_terminal_status_counts_as_unknown() -> None:
    assert result(part_report(1, D), part_report(2, S, final=True)) == (X, True, 2)


def test_each_part_follows_the_status_model() -> None:
    """A part's late SENT does not undo its DELIVERED, so the parent stays DELIVERED."""
    reports = [
        part_report(1, D, count=2, offset=5),
        part_report(1, S, count=2, offset=9),
        part_report(2, D, count=2, offset=6),
    ]
    assert result(*reports) == (D, False, 2)


@st.composite
def part_reports(draw: st.DrawFn) -> list[pb.DeliveryReport]:
    """Reports of up to three parts of one message (which announces one part count)."""
    count = draw(st.sampled_from([0, 3, 4]))
    one = st.builds(
        part_report,
        index=st.integers(1, 3),
        status=st.sampled_from(STATUSES),
        count=st.just(count),
        offset=st.integers(0, 4),
        final=st.booleans(),
    )
    return draw(st.lists(one, min_size=1, max_size=12))


@settings(max_examples=200, deadline=None)
@given(
    reports=part_reports(), seed=st.integers(0, 2**16), policy=st.sampled_from(multipart.POLICIES)
)
def test_any_order_and_duplication_give_the_same_parent(
    reports: list[pb.DeliveryReport], seed: int, policy: multipart.Policy
) -> None:
    shuffled = reports + random.Random(seed).sample(reports, k=len(reports) // 2)
    random.Random(seed).shuffle(shuffled)
    first = multipart.aggregate(states(reports), policy)
    again = multipart.aggregate(states(shuffled), policy)
    assert (first.status, first.partial, first.part_count) == (
        again.status,
        again.partial,
        again.part_count,
    )
    assert first.decided_by.message_id == again.decided_by.message_id
    assert first.status != pb.DELIVERY_STATUS_UNSPECIFIED


def test_no_parts_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        multipart.aggregate([])


async def test_get_message_status_aggregates_a_parent_id(tmp_path: Path) -> None:
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        ingest = ingest_grpc.IngestServiceStub(channel).IngestReports
        status = status_grpc.StatusServiceStub(channel).GetMessageStatus
        reports = [
            part_report(2, U, count=3, offset=8),
            part_report(1, S, count=3, offset=1),
            part_report(1, D, count=3, offset=5),
        ]
        await ingest(ingest_pb.IngestReportsRequest(reports=reports))

        async def get(message_id: str, full: bool = False) -> pb.MessageStatus:
            view = pb.MESSAGE_STATUS_VIEW_FULL if full else pb.MESSAGE_STATUS_VIEW_BASIC
            request = status_pb.GetMessageStatusRequest(
                provider="infobip", message_id=message_id, view=view
            )
            return (await status(request)).message_status

        whole = await get("whole", full=True)
        assert (whole.status, whole.partial, whole.part_count) == (U, True, 3)
        assert [(p.message_id, p.part_index, p.status) for p in whole.parts] == [
            ("part-1", 1, D),
            ("part-2", 2, U),
        ]
        assert whole.latest_report.message_id == "part-2"
        assert whole.report_count == 3
        assert [r.status for r in whole.history] == [S, D, U]  # both parts, oldest first
        part = await get("part-1")
        assert (part.status, part.parent_message_id, list(part.parts)) == (D, "whole", [])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get("nothing")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    settings_any = statusd_settings(tmp_path, multipart_policy="any_delivered")
    async with (
        running_statusd(settings_any) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        request = status_pb.GetMessageStatusRequest(provider="infobip", message_id="whole")
        answer = await status_grpc.StatusServiceStub(channel).GetMessageStatus(request)
        assert (answer.message_status.status, answer.message_status.partial) == (D, True)

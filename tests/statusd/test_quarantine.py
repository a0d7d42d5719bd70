"""The quarantine over gRPC: items kept, listed in pages, deleted after replay (covers the
quarantine parts of statusd/service.py, statusd/reads.py and statusd/committer.py)."""

from __future__ import annotations

import grpc
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc


def item(index: int) -> pb.QuarantinedItem:
    return pb.QuarantinedItem(provider="infobip", reason=f"reason {index}", raw=f'{{"n": {index}}}')


async def test_list_in_pages_and_delete(channel: grpc.aio.Channel) -> None:
    stub = ingest_grpc.IngestServiceStub(channel)
    answer = await stub.IngestReports(
        ingest_pb.IngestReportsRequest(quarantined_items=[item(index) for index in range(5)])
    )
    assert answer.quarantined == 5
    seen: list[pb.QuarantinedItem] = []
    token = ""
    while True:
        page = await stub.ListQuarantinedItems(
            ingest_pb.ListQuarantinedItemsRequest(page_size=2, page_token=token)
        )
        seen += page.quarantined_items
        token = page.next_page_token
        if not token:
            break
    assert [entry.reason for entry in seen] == [f"reason {index}" for index in range(5)]
    assert all(entry.received_time.seconds > 0 for entry in seen)
    deleted = await stub.DeleteQuarantinedItems(
        ingest_pb.DeleteQuarantinedItemsRequest(ids=[seen[0].id, seen[1].id, "nope"])
    )
    assert deleted.deleted == 2
    rest = await stub.ListQuarantinedItems(ingest_pb.ListQuarantinedItemsRequest())
    assert len(rest.quarantined_items) == 3


@pytest.mark.parametrize(
    "request_",
    [
        ingest_pb.ListQuarantinedItemsRequest(page_size=-1),
        ingest_pb.ListQuarantinedItemsRequest(page_token="not-a-token"),
        ingest_pb.ListQuarantinedItemsRequest(page_token="aGVsbG8="),
    ],
)
async def test_bad_list_requests(
    channel: grpc.aio.Channel, request_: ingest_pb.ListQuarantinedItemsRequest
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ingest_grpc.IngestServiceStub(channel).ListQuarantinedItems(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

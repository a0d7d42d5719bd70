"""``dlrhub quarantine list|replay|delete`` against a running statusd: items that parse with
today's code are ingested and deleted; items that still fail stay with their reason until an
admin deletes them by id."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from dlrhub_cli.main import main
from dlrhub_cli.quarantine import reparse, replay
from gateway.providers.base import InvalidItem
from tests.helpers.processes import Stack

pytestmark = pytest.mark.e2e

FIXED = {
    "messageId": "fixed-1",
    "to": "41793026727",
    "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
}
BROKEN = {"to": "41793026727", "status": {"groupName": "DELIVERED"}}


async def test_replay_ingests_what_parses_now(tmp_path: Path) -> None:
    stack = Stack(tmp_path, {})
    stack.start_statusd()
    try:
        async with grpc.aio.insecure_channel(stack.target) as channel:
            items = [
                pb.QuarantinedItem(
                    provider="infobip", reason="old parser", raw=json.dumps(FIXED), request_id="r1"
                ),
                pb.QuarantinedItem(provider="infobip", reason="no id", raw=json.dumps(BROKEN)),
            ]
            await ingest_grpc.IngestServiceStub(channel).IngestReports(
                ingest_pb.IngestReportsRequest(quarantined_items=items)
            )
            dry = await replay(channel, dry_run=True)
            assert len(dry.replayed) == 1
            assert len(dry.failing) == 1
            result = await replay(channel, dry_run=False)
            assert len(result.replayed) == 1
            assert list(result.failing.values()) == ["messageId is missing or not a string"]
            status = await status_grpc.StatusServiceStub(channel).GetMessageStatus(
                status_pb.GetMessageStatusRequest(provider="infobip", message_id="fixed-1")
            )
            assert status.message_status.status == pb.DELIVERY_STATUS_DELIVERED
            assert status.message_status.latest_report.auth_method == "quarantine_replay"
            assert status.message_status.latest_report.request_id == "r1"
            left = await ingest_grpc.IngestServiceStub(channel).ListQuarantinedItems(
                ingest_pb.ListQuarantinedItemsRequest()
            )
            assert len(left.quarantined_items) == 1
    finally:
        stack.stop()


def test_an_item_of_a_provider_no_longer_served_does_not_parse() -> None:
    with pytest.raises(InvalidItem, match="unknown provider 'nosuch'"):
        reparse(pb.QuarantinedItem(provider="nosuch", reason="gone", raw="{}"))


ADMIN = "admin-token-0123456789"
GATEWAY = "gateway-token-0123456789"
READER = "reader-token-0123456789"


def test_help_names_the_role_the_commands_need(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["quarantine", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "role admin" in text
    assert "DLRHUB_ADMIN_TOKENS" in text
    assert "DLRHUB_INGEST_TOKENS" not in text
    assert "DLRHUB_READ_TOKENS" not in text


def test_the_commands_work_with_an_admin_token_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(
        tmp_path,
        {
            "DLRHUB_INGEST_TOKENS": GATEWAY,
            "DLRHUB_READ_TOKENS": READER,
            "DLRHUB_ADMIN_TOKENS": ADMIN,
        },
    )
    stack.start_statusd()
    try:
        with grpc.insecure_channel(stack.target) as channel:
            ingest_grpc.IngestServiceStub(channel).IngestReports(
                ingest_pb.IngestReportsRequest(
                    quarantined_items=[
                        pb.QuarantinedItem(provider="infobip", reason="r", raw=json.dumps(FIXED))
                    ]
                ),
                metadata=(("authorization", f"Bearer {GATEWAY}"),),
            )
        for token in (GATEWAY, READER):
            for action in ("list", "replay"):
                assert main(["quarantine", action, "--target", stack.target, "--token", token]) == 1
                assert "PERMISSION_DENIED" in capsys.readouterr().err
        assert main(["quarantine", "list", "--target", stack.target, "--token", ADMIN]) == 0
        assert main(["quarantine", "replay", "--target", stack.target, "--token", ADMIN]) == 0
        assert "replayed 1 item(s); 0 still fail" in capsys.readouterr().out
        delete_what_never_parses(stack.target, capsys)
    finally:
        stack.stop()


def delete_what_never_parses(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``quarantine delete ID...``: only with an admin token; an empty list says so."""
    admin = ["--target", target, "--token", ADMIN]
    assert main(["quarantine", "list", *admin]) == 0
    empty = capsys.readouterr()
    assert (empty.out, empty.err.strip()) == ("", "the quarantine is empty")
    with grpc.insecure_channel(target) as channel:
        ingest_grpc.IngestServiceStub(channel).IngestReports(
            ingest_pb.IngestReportsRequest(
                quarantined_items=[
                    pb.QuarantinedItem(provider="infobip", reason=f"r{n}", raw=json.dumps(BROKEN))
                    for n in range(2)
                ]
            ),
            metadata=(("authorization", f"Bearer {GATEWAY}"),),
        )
    assert main(["quarantine", "list", "--json", *admin]) == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert len(ids) == 2
    assert main(["quarantine", "list", *admin]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        [item, "infobip", f"r{n}"] for n, item in enumerate(ids)
    ]
    reason_column = len("standard-webhooks") + 2  # the longest provider name, and a gap
    assert {line.index(" r") - line.index("infobip") for line in lines} == {reason_column - 1}
    for token in (GATEWAY, READER):
        assert main(["quarantine", "delete", ids[0], "--target", target, "--token", token]) == 1
        assert "PERMISSION_DENIED" in capsys.readouterr().err
    for wrong in (["delete"], ["list", ids[0]]):
        with pytest.raises(SystemExit) as exited:
            main(["quarantine", *wrong, *admin])
        assert exited.value.code == 2
    assert "the following arguments are required: ID" in capsys.readouterr().err
    assert main(["quarantine", "delete", ids[0], "no-such-id", *admin]) == 0
    assert capsys.readouterr().out.strip() == "deleted 1 item(s)"
    assert main(["quarantine", "list", "--json", *admin]) == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ids[1:]
    assert main(["quarantine", "delete", "--json", ids[1], *admin]) == 0
    assert json.loads(capsys.readouterr().out) == {"deleted": 1}

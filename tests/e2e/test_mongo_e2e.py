"""statusd on a real MongoDB replica set, end to end: signed webhooks in through the gateway,
statuses out over gRPC, a Watch on a second statusd replica that sees the first one's commits
(through the change stream), and everything still there after a restart.

Runs only when ``DLRHUB_TEST_MONGODB_URI`` names a replica set (the ``mongodb`` CI workflow
starts one); each run uses a database of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import httpx
import pymongo
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.e2e.test_end_to_end import BASIC, get_status, infobip
from tests.helpers.processes import CREDENTIALS, Service, Stack, free_port, port_open

URI = os.environ.get("DLRHUB_TEST_MONGODB_URI", "")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not URI,
        reason="DLRHUB_TEST_MONGODB_URI is not set: no MongoDB replica set to run against "
        "(the mongodb CI workflow starts one and sets it)",
    ),
]


@pytest.fixture
def database() -> Iterator[str]:
    name = f"dlrhub_e2e_{uuid.uuid4().hex[:12]}"
    yield name
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        URI, serverSelectionTimeoutMS=5000
    )
    with client:
        client.drop_database(name)


@pytest.fixture
def stack_env(database: str) -> dict[str, str]:
    """The stack of tests/e2e/conftest.py, on the MongoDB store."""
    return {**CREDENTIALS, "DLRHUB_MONGODB_URI": URI, "DLRHUB_MONGODB_DATABASE": database}


@pytest.fixture
def replica(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A second statusd process on the same database; its gRPC target."""
    port = free_port()
    env = {**stack.env, "DLRHUB_STATUSD_PORT": str(port)}
    env["DLRHUB_STATUSD_METRICS_PORT"] = str(free_port())
    second = Service("dlrhub-statusd", env, tmp_path / "statusd-2.log").start()
    second.wait_until(lambda: port_open(port))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        second.stop()


def post(stack: Stack, body: Mapping[str, object]) -> dict[str, int]:
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        response = http.post("/webhooks/infobip", content=json.dumps(body), headers=BASIC)
    assert response.status_code == 200, response.text
    answer: dict[str, int] = response.json()
    return answer


def test_reports_in_statuses_out_on_a_replica_set(stack: Stack) -> None:
    batch = {
        "results": [
            infobip("mg-1", "PENDING_ENROUTE", "PENDING", "2026-03-01T10:00:00.000+0000"),
            infobip("mg-1", "DELIVERED_TO_HANDSET", "DELIVERED", "2026-03-01T10:00:05.000+0000"),
        ]
    }
    assert post(stack, batch)["stored"] == 2
    assert post(stack, batch)["duplicates"] == 2
    status = get_status(stack.target, "infobip", "mg-1")
    assert status.status == pb.DELIVERY_STATUS_DELIVERED
    assert status.report_count == 2
    assert [report.provider_status for report in status.history] == [
        "PENDING_ENROUTE",
        "DELIVERED_TO_HANDSET",
    ]
    assert stack.statusd.stop() == 0
    stack.start_statusd()
    again = get_status(stack.target, "infobip", "mg-1")
    assert (again.status, again.report_count) == (pb.DELIVERY_STATUS_DELIVERED, 2)


def test_a_watch_on_one_replica_sees_a_commit_through_another(stack: Stack, replica: str) -> None:
    with grpc.insecure_channel(replica) as channel:
        stream = status_grpc.StatusServiceStub(channel).WatchMessageStatuses(
            status_pb.WatchMessageStatusesRequest(), timeout=30
        )
        first = next(stream)
        assert first.resume_token
        assert not first.HasField("message_status")
        body = {
            "results": [
                infobip("mg-w", "DELIVERED_TO_HANDSET", "DELIVERED", "2026-03-01T10:00:00.000+0000")
            ]
        }
        assert post(stack, body)["stored"] == 1  # committed by the first statusd
        for response in stream:
            if response.HasField("message_status"):
                break
        else:
            raise AssertionError("the stream ended without the change")
        stream.cancel()
    assert response.report.message_id == "mg-w"
    assert response.message_status.status == pb.DELIVERY_STATUS_DELIVERED
    assert response.message_status.report_count == 1

"""statusd and the gateway as real processes on loopback: signed webhooks in over HTTP,
statuses out over gRPC, statusd stopped and restarted under the gateway."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import grpc
import httpx
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from tests.helpers.processes import (
    CREDENTIALS,
    INFOBIP_BASIC_AUTH,
    PLIVO_AUTH_TOKEN,
    PUBLIC_URL,
    Stack,
)
from tests.helpers.requests import basic_json_headers, plivo_v3

pytestmark = pytest.mark.e2e

BASIC = basic_json_headers(INFOBIP_BASIC_AUTH)


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {**CREDENTIALS, "DLRHUB_LOG_FORMAT": "json"}


def infobip(message_id: str, name: str, group: str, done_at: str) -> dict[str, object]:
    return {
        "messageId": message_id,
        "to": "41793026727",
        "doneAt": done_at,
        "status": {"groupName": group, "name": name},
    }


def plivo_request(form: dict[str, str], nonce: str = "8472615") -> dict[str, object]:
    return plivo_v3(PUBLIC_URL + "/webhooks/plivo", form, PLIVO_AUTH_TOKEN, nonce)


def get_status(target: str, provider: str, message_id: str) -> pb.MessageStatus:
    with grpc.insecure_channel(target) as channel:
        response = status_grpc.StatusServiceStub(channel).GetMessageStatus(
            status_pb.GetMessageStatusRequest(
                provider=provider, message_id=message_id, view=pb.MESSAGE_STATUS_VIEW_FULL
            ),
            timeout=5,
        )
    return response.message_status


def test_signed_reports_in_statuses_out(stack: Stack) -> None:
    batch = {
        "results": [
            infobip("ib-1", "PENDING_ENROUTE", "PENDING", "2026-03-01T10:00:00.000+0000"),
            infobip("ib-1", "DELIVERED_TO_HANDSET", "DELIVERED", "2026-03-01T10:00:05.000+0000"),
            infobip(
                "ib-2",
                "UNDELIVERABLE_NOT_DELIVERED",
                "UNDELIVERABLE",
                "2026-03-01T10:00:09.000+0000",
            ),
        ]
    }
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        response = http.post("/webhooks/infobip", content=json.dumps(batch), headers=BASIC)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == 3
        form = {
            "MessageUUID": "pl-1",
            "Status": "sent",
            "To": "14155551234",
            "Sequence": "2",
            "ErrorCode": "",
        }
        assert http.post("/webhooks/plivo", **plivo_request(form)).status_code == 200  # type: ignore[arg-type]

        first = get_status(stack.target, "infobip", "ib-1")
        assert first.status == pb.DELIVERY_STATUS_DELIVERED
        assert [report.provider_status for report in first.history] == [
            "PENDING_ENROUTE",
            "DELIVERED_TO_HANDSET",
        ]
        assert first.recipient == "+41793026727"
        assert get_status(stack.target, "infobip", "ib-2").status == pb.DELIVERY_STATUS_UNDELIVERED
        plivo = get_status(stack.target, "plivo", "pl-1")
        assert (plivo.status, plivo.latest_report.auth_method) == (
            pb.DELIVERY_STATUS_SENT,
            "plivo_v3",
        )

        # Resending changes nothing; an older status after a newer one changes nothing.
        again = http.post("/webhooks/infobip", content=json.dumps(batch), headers=BASIC)
        assert again.json()["duplicates"] == 3
        older = {
            "results": [
                infobip("ib-1", "PENDING_ACCEPTED", "PENDING", "2026-03-01T09:59:00.000+0000")
            ]
        }
        late = http.post("/webhooks/infobip", content=json.dumps(older), headers=BASIC)
        assert late.json()["stale"] == 1
        after = get_status(stack.target, "infobip", "ib-1")
        assert after.status == pb.DELIVERY_STATUS_DELIVERED
        assert after.latest_report == first.latest_report
        assert after.report_count == 3

        # A tampered signature is refused.
        tampered = plivo_request({**form, "Status": "delivered"})
        tampered["content"] = urlencode({**form, "Status": "failed"})
        assert http.post("/webhooks/plivo", **tampered).status_code == 401  # type: ignore[arg-type]
        assert get_status(stack.target, "plivo", "pl-1").status == pb.DELIVERY_STATUS_SENT


def test_statusd_stopped_means_503_and_the_retry_is_stored(stack: Stack) -> None:
    body = json.dumps(
        {
            "results": [
                infobip(
                    "gone-1", "DELIVERED_TO_HANDSET", "DELIVERED", "2026-03-01T10:00:00.000+0000"
                )
            ]
        }
    )
    assert stack.statusd.stop() == 0  # SIGTERM: graceful, exit code 0
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        response = http.post("/webhooks/infobip", content=body, headers=BASIC)
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert http.get("/readyz").status_code == 503
        stack.start_statusd()
        deadline = time.monotonic() + 15
        while True:
            response = http.post("/webhooks/infobip", content=body, headers=BASIC)
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["stored"] == 1
    assert get_status(stack.target, "infobip", "gone-1").status == pb.DELIVERY_STATUS_DELIVERED


def test_sigterm_stops_both_cleanly(stack: Stack) -> None:
    assert stack.gateway.stop() == 0
    assert stack.statusd.stop() == 0
    log = (stack.statusd.log).read_text()
    assert "statusd stopped" in log


def test_logs_dump_the_configuration_without_secrets(stack: Stack) -> None:
    stack.stop()
    for service in (stack.gateway, stack.statusd):
        lines = [json.loads(line) for line in service.log.read_text().splitlines()]
        dumps = [line for line in lines if line["message"] == "configuration"]
        assert len(dumps) == 1
        assert dumps[0]["settings"]
        text = service.log.read_text()
        assert INFOBIP_BASIC_AUTH.split(":")[1] not in text
        assert PLIVO_AUTH_TOKEN not in text
    gateway = [json.loads(line) for line in stack.gateway.log.read_text().splitlines()]
    enabled = {
        line["provider"]: line["auth"] for line in gateway if line["message"] == "webhook enabled"
    }
    assert enabled == {"infobip": ["basic_auth"], "plivo": ["auth_token"]}

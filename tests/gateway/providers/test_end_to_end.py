"""Every provider end to end: a signed webhook over real HTTP to a running gateway, committed by
a running statusd, read back over real gRPC; multipart parents aggregated at read time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from dlrhub_common.settings import load
from gateway.providers import PROVIDERS, Provider
from gateway.providers.base import SampleRequest
from gateway.providers.sinch import sign_now as sinch_sign_now
from gateway.providers.vonage import sign as vonage_sign
from tests.helpers.servers import environment, running_gateway, running_statusd, statusd_settings

PUBLIC_URL = "https://dlr.example.com"
#: The failure each provider's sample reports here, where it is not ``undelivered``.
FAILURES = {
    "vonage": "rejected",
    "vonage-messages": "rejected",
    "telnyx": "failed",
    "aws-sns": "rejected",
    "standard-webhooks": "failed",
}


def environment_for(tmp_path: Path) -> dict[str, str]:
    """Every provider's development credentials, as ``dlrhub run`` makes them, with Vonage
    parts grouped under their client-ref."""
    env = {"DLRHUB_VONAGE_CLIENT_REF_IS_PARENT": "true"}
    for provider in PROVIDERS.values():
        env.update(provider.dev_credentials(tmp_path))
    return env


@dataclass
class Running:
    env: dict[str, str]
    http: httpx.AsyncClient
    channel: grpc.aio.Channel

    def provider(self, name: str) -> Provider:
        provider_class = PROVIDERS[name]
        with environment(self.env):
            credentials = load(provider_class.settings_class).account_credentials()[""]
        return provider_class("", credentials)

    async def send(self, sample: SampleRequest) -> httpx.Response:
        parts = urlsplit(sample.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return await self.http.request(
            sample.method, target, content=sample.body, headers=sample.headers
        )

    async def status(self, provider: str, message_id: str) -> pb.MessageStatus:
        request = status_pb.GetMessageStatusRequest(
            provider=provider, message_id=message_id, view=pb.MESSAGE_STATUS_VIEW_FULL
        )
        stub = status_grpc.StatusServiceStub(self.channel)
        return (await stub.GetMessageStatus(request, timeout=5)).message_status


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    env = environment_for(tmp_path)
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        running_gateway(env, f"127.0.0.1:{daemon.port}", public_url=PUBLIC_URL) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        yield Running(env, http, channel)


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_signed_reports_in_statuses_out(running: Running, name: str) -> None:
    provider = running.provider(name)
    url = f"{PUBLIC_URL}/webhooks/{name}"
    first = provider.sample(url, f"{name}-e2e-1", "delivered")
    response = await running.send(first)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    message_id = first.message_id or f"{name}-e2e-1"
    status = await running.status(name, message_id)
    assert status.status == pb.DELIVERY_STATUS_DELIVERED
    assert status.latest_report.auth_method not in ("", "none")
    assert json.loads(status.latest_report.raw)
    again = await running.send(first)
    if again.status_code == 401:  # a signed nonce the gateway remembers (Plivo): a replay
        assert "nonce was already accepted" in again.json()["reason"]
    else:
        assert again.status_code == 200
        assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)

    failure = FAILURES.get(name, "undelivered")
    second = provider.sample(url, f"{name}-e2e-2", failure)
    assert (await running.send(second)).status_code == 200
    failed = await running.status(name, second.message_id or f"{name}-e2e-2")
    assert pb.DeliveryStatus.Name(failed.status) == f"DELIVERY_STATUS_{failure.upper()}"

    forged = SampleRequest(
        first.method, first.url, first.headers, first.body.replace(b"e2e-1", b"e2e-9")
    )
    if first.method == "GET":
        forged = SampleRequest("GET", first.url.replace("e2e-1", "e2e-9"), first.headers, b"")
    if name == "infobip":  # Basic credentials do not cover the body: forge them instead
        headers = {**first.headers, "Authorization": "Basic eDp5"}
        headers.pop("X-Infobip-Signature")
        forged = SampleRequest("POST", first.url, headers, first.body)
    refused = await running.send(forged)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "unauthorized"


async def test_vonage_parts_are_aggregated_under_their_client_ref(running: Running) -> None:
    async def receipt(message_id: str, status: str, code: str) -> None:
        params = {
            "messageId": message_id,
            "status": status,
            "err-code": code,
            "msisdn": "447700900000",
            "to": "Acme",
            "client-ref": "order-77",
            "nonce": message_id,
        }
        env = running.env
        secret = env["DLRHUB_VONAGE_SIGNATURE_SECRET"]
        params["sig"] = vonage_sign(params, secret, env["DLRHUB_VONAGE_SIGNATURE_METHOD"])
        answer = await running.http.get("/webhooks/vonage", params=params)
        assert answer.status_code == 200, answer.text

    await receipt("part-a", "delivered", "0")
    whole = await running.status("vonage", "order-77")
    assert (whole.status, whole.part_count, whole.partial) == (
        pb.DELIVERY_STATUS_DELIVERED,
        1,
        False,
    )
    await receipt("part-b", "failed", "2")
    whole = await running.status("vonage", "order-77")
    assert (whole.status, whole.part_count, whole.partial) == (
        pb.DELIVERY_STATUS_UNDELIVERED,
        2,
        True,
    )
    assert [part.message_id for part in whole.parts] == ["part-a", "part-b"]
    assert (await running.status("vonage", "part-a")).status == pb.DELIVERY_STATUS_DELIVERED


async def test_an_unsigned_vonage_messages_callback_is_retried(running: Running) -> None:
    body = json.dumps({"message_uuid": "u-1", "status": "delivered"}).encode()
    answer = await running.http.post(
        "/webhooks/vonage-messages", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    with pytest.raises(grpc.aio.AioRpcError):
        await running.status("vonage-messages", "u-1")


PAYLOADS = Path(__file__).parent / "payloads"


async def test_unreadable_information_is_stored_without_it_and_counted(running: Running) -> None:
    # Infobip sends "mccMnc": "null" in real DELIVERED reports: stored, with no MCC/MNC.
    sample = running.provider("infobip").sample(f"{PUBLIC_URL}/webhooks/infobip", "x", "delivered")
    basic = {"Content-Type": "application/json", "Authorization": sample.headers["Authorization"]}
    for name in ("delivered_mccmnc_null.json", "unreadable_information.json"):
        body = (PAYLOADS / "infobip" / name).read_bytes()
        answer = await running.http.post("/webhooks/infobip", content=body, headers=basic)
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 1
    status = await running.status("infobip", "4457938225440256-1")
    assert status.status == pb.DELIVERY_STATUS_DELIVERED
    assert (status.latest_report.mcc, status.latest_report.mnc) == ("", "")
    assert json.loads(status.latest_report.raw)["mccMnc"] == "null"
    failed = await running.status("infobip", "4457938225440257-1")
    assert failed.status == pb.DELIVERY_STATUS_UNDELIVERED
    assert json.loads(failed.latest_report.raw)["mccMnc"] == "2191"
    exported = (await running.http.get("/metrics")).text
    counted = {
        line.split('field="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exported.splitlines()
        if line.startswith("dlrhub_report_fields_dropped_total{") and 'provider="infobip"' in line
    }
    for field in ("mcc_mnc", "price", "segments", "event_time", "recipient", "error_text"):
        assert counted.get(field, 0) >= 1, (field, counted)


async def test_sinch_recipient_and_batch_reports_land_on_one_message(running: Running) -> None:
    secret = running.env["DLRHUB_SINCH_WEBHOOK_SECRET"]
    for name in ("batch_full_uk.json", "recipient_delivered_uk.json"):
        body = (PAYLOADS / "sinch" / name).read_bytes()
        headers = {"Content-Type": "application/json", **sinch_sign_now(body, secret)}
        answer = await running.http.post("/webhooks/sinch", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
    status = await running.status("sinch", "01HT0Q5C3S0R3XKJ2M9W1GUKBT:+447700900123")
    assert status.status == pb.DELIVERY_STATUS_DELIVERED
    assert status.latest_report.recipient == "+447700900123"
    assert status.report_count == 2  # the batch report's and the recipient report's
    with pytest.raises(grpc.aio.AioRpcError):
        await running.status("sinch", "01HT0Q5C3S0R3XKJ2M9W1GUKBT:447700900123")

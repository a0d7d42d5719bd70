"""Standard Webhooks: v1 signatures (the vector and the reference library), the 300 s window,
and the mapping of any sender's payload to the canonical fields."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dlrhub_common.settings import ConfigError, load
from dlrhub_common.status_names import status_label
from gateway.errors import Malformed, Unauthenticated
from gateway.providers.base import InboundRequest
from gateway.providers.standard_webhooks import (
    StandardWebhooks,
    StandardWebhooksCredentials,
    sign,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "standard-webhooks"
URL = "https://dlr.example.com/webhooks/standard-webhooks"
CUSTOM: dict[str, Any] = {
    "field_map": {
        "message_id": "data.id",
        "status": "data.state",
        "event_time": "timestamp",
        "recipient": "data.to.0.number",
        "sender": "data.from",
        "client_ref": "data.metadata.reference",
        "price_amount": "data.cost.amount",
        "price_currency": "data.cost.currency",
        "segments": "data.segments",
    },
    "status_map": {"DELIVERED_TO_HANDSET": "delivered", "BOUNCED": "undelivered"},
}


def whsec(name: str) -> str:
    """A test secret per name, in the whsec_ form."""
    return "whsec_" + base64.b64encode(name.encode().ljust(24, b"_")).decode()


def body_for(message_id: str = "msg-1", status: str = "delivered") -> bytes:
    return json.dumps({"message_id": message_id, "status": status}).encode()


def signed(
    body: bytes, secret: str, stamp: int | None = None, webhook_id: str = "msg_1"
) -> InboundRequest:
    stamp_text = str(int(time.time()) if stamp is None else stamp)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp_text,
        "webhook-signature": sign(webhook_id, stamp_text, body, secret),
    }
    return inbound(URL, headers=headers, body=body, content_type="application/json")


def endpoint(*secrets: str, now: float | None = None, **extra: Any) -> StandardWebhooks:
    creds = StandardWebhooksCredentials(secret=",".join(secrets), **extra)
    clock = (lambda: now) if now is not None else time.time
    return StandardWebhooks("", creds, clock=clock)


class TestStandardWebhooksContract(TimestampedProviderContract):
    provider = StandardWebhooks
    sample_statuses = (
        "accepted",
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "expired",
        "rejected",
        "failed",
        "unknown",
    )

    def credentials(self, *secrets: str) -> StandardWebhooksCredentials:
        return StandardWebhooksCredentials(secret=",".join(whsec(secret) for secret in secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return signed(body_for(message_id), whsec(secret))

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"delivered", b"failed"))

    def stale_request(self, secret: str) -> InboundRequest:
        return signed(body_for(), whsec(secret), int(time.time()) - 301)


class TestCustomShapeContract(TestStandardWebhooksContract):
    """The same contract with a sender whose payload is mapped."""

    def credentials(self, *secrets: str) -> StandardWebhooksCredentials:
        return StandardWebhooksCredentials(
            secret=",".join(whsec(secret) for secret in secrets), **CUSTOM
        )

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        body = {"data": {"id": message_id, "state": "DELIVERED_TO_HANDSET"}}
        return signed(json.dumps(body).encode(), whsec(secret))

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"DELIVERED", b"BOUNCED"))

    def stale_request(self, secret: str) -> InboundRequest:
        return signed(b'{"data": {"id": "m", "state": "BOUNCED"}}', whsec(secret), 1)


@pytest.mark.parametrize(
    "vector", signature_vectors("standard-webhooks"), ids=lambda vector: vector["id"]
)
def test_signature_vectors(vector: dict[str, Any]) -> None:
    headers = vector["headers"]
    stamp = int(headers["webhook-timestamp"])
    request = inbound(
        URL, headers=headers, body=vector["body"].encode(), content_type="application/json"
    )
    assert vector["valid"]
    assert endpoint(vector["secret"], now=stamp + 10).verify(request) == "standard_webhooks"
    good = headers["webhook-signature"]
    several = dataclasses.replace(
        request,
        headers={**request.headers, "webhook-signature": f"v1,AAAA v1a,BBBB {good}"},
    )
    assert endpoint(vector["secret"], now=stamp).verify(several)
    only_other_versions = dataclasses.replace(
        request,
        headers={**request.headers, "webhook-signature": good.replace("v1,", "v2,")},
    )
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"], now=stamp).verify(only_other_versions)
    for now in (stamp + 301, stamp - 301):
        with pytest.raises(Unauthenticated) as caught:
            endpoint(vector["secret"], now=now).verify(request)
        assert caught.value.label == "stale"


def test_reference_library_and_ours_agree() -> None:
    secret = whsec("reference")
    body = body_for()
    now = datetime.now(UTC)
    theirs = Webhook(secret).sign("msg_abc", now, body.decode())
    stamp = str(int(now.timestamp()))
    headers = {"webhook-id": "msg_abc", "webhook-timestamp": stamp, "webhook-signature": theirs}
    request = inbound(URL, headers=headers, body=body, content_type="application/json")
    assert endpoint(secret).verify(request) == "standard_webhooks"
    ours = sign("msg_abc", stamp, body, secret)
    assert Webhook(secret).verify(body, {**headers, "webhook-signature": ours}) == json.loads(body)
    for name, value in (("webhook-id", "msg_abd"), ("webhook-timestamp", str(int(stamp) - 1))):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, {**headers, name: value})
        with pytest.raises(Unauthenticated):
            endpoint(secret).verify(
                dataclasses.replace(request, headers={**request.headers, name: value})
            )
    with pytest.raises(Unauthenticated):
        endpoint(whsec("other")).verify(request)


def test_svix_header_names_are_accepted() -> None:
    request = signed(body_for(), whsec("s"))
    renamed = {name.replace("webhook-", "svix-"): value for name, value in request.headers.items()}
    assert endpoint(whsec("s")).verify(dataclasses.replace(request, headers=renamed))


def test_the_default_shape_is_normalized_and_webhook_id_is_the_event_id() -> None:
    body = (PAYLOADS / "default_shape.json").read_bytes()
    report = first_report(endpoint(whsec("s")).handle(signed(body, whsec("s"), webhook_id="evt_9")))
    assert (report.message_id, report.event_id) == ("m-100", "evt_9")
    assert (status_label(report.status), report.provider_status) == ("undelivered", "undelivered")
    assert (report.recipient, report.sender, report.client_ref) == (
        "+447700900123",
        "Acme",
        "order-100",
    )
    assert (report.error.code, report.error.description) == ("E42", "Handset unreachable")
    assert report.event_time.ToJsonString() == "2026-03-01T10:00:05Z"


def test_unreadable_information_is_left_out_and_the_time_falls_back() -> None:
    item = json.loads((PAYLOADS / "default_shape.json").read_text())
    item.update(
        {
            "event_time": "1 March 2026",
            "recipient": "+44",
            "error_description": {"text": "unreachable"},
            "segments": "x",
            "part_index": -1,
            "price_amount": "1e400000",
        }
    )
    body = json.dumps(item).encode()
    parsed = endpoint(whsec("s")).handle(signed(body, whsec("s")))
    (report,) = parsed.reports
    assert status_label(report.status) == "undelivered"
    assert (report.recipient, report.segments, report.part_index) == ("", 0, 0)
    assert not report.HasField("error")
    assert not report.HasField("event_time")  # the receive time stands for it
    assert not report.price.amount
    assert sorted(name for name, _ in parsed.dropped) == [
        "error_text",
        "event_time",
        "parts",
        "price",
        "recipient",
        "segments",
    ]


def test_a_custom_shape_is_mapped() -> None:
    body = (PAYLOADS / "custom_shape.json").read_bytes()
    report = first_report(endpoint(whsec("s"), **CUSTOM).handle(signed(body, whsec("s"))))
    assert (report.message_id, status_label(report.status)) == ("sms_9f8e7d", "delivered")
    assert report.provider_status == "DELIVERED_TO_HANDSET"
    assert (report.recipient, report.sender, report.client_ref) == (
        "+15558675310",
        "Acme",
        "order-101",
    )
    assert (report.price.amount, report.price.currency, report.segments) == ("0.0075", "USD", 2)
    assert report.event_time.ToJsonString() == "2026-03-01T09:00:05.250Z"
    unmapped = body.replace(b"DELIVERED_TO_HANDSET", b"SOMETHING_NEW")
    odd = first_report(endpoint(whsec("s"), **CUSTOM).handle(signed(unmapped, whsec("s"))))
    assert (status_label(odd.status), odd.provider_status) == ("unknown", "SOMETHING_NEW")


def test_mapping_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_STANDARD_WEBHOOKS_SECRET", whsec("s"))
    monkeypatch.setenv("DLRHUB_STANDARD_WEBHOOKS_FIELD_MAP", json.dumps(CUSTOM["field_map"]))
    monkeypatch.setenv("DLRHUB_STANDARD_WEBHOOKS_STATUS_MAP", '{"OK": "Delivered"}')
    default = load(StandardWebhooks.settings_class).account_credentials()[""]
    assert isinstance(default, StandardWebhooksCredentials)
    assert default.status_map == {"ok": "delivered"}
    for variable, value in (
        ("DLRHUB_STANDARD_WEBHOOKS_STATUS_MAP", '{"OK": "great"}'),
        ("DLRHUB_STANDARD_WEBHOOKS_FIELD_MAP", '{"colour": "data.colour"}'),
        ("DLRHUB_STANDARD_WEBHOOKS_FIELD_MAP", '{"status": "data..state"}'),
        ("DLRHUB_STANDARD_WEBHOOKS_SECRET", "whsec_***"),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            with pytest.raises(ConfigError) as caught:
                load(StandardWebhooks.settings_class)
            assert variable in str(caught.value)


def test_missing_headers_and_bad_bodies() -> None:
    request = signed(body_for(), whsec("s"))
    no_id = {k: v for k, v in request.headers.items() if k != "webhook-id"}
    with pytest.raises(Unauthenticated) as caught:
        endpoint(whsec("s")).verify(dataclasses.replace(request, headers=no_id))
    assert caught.value.label == "missing"
    with pytest.raises(Malformed):
        endpoint(whsec("s")).handle(signed(b"[1, 2]", whsec("s")))
    parsed = endpoint(whsec("s")).handle(signed(b'{"message_id": "m"}', whsec("s")))
    assert parsed.quarantined[0].reason == "status is missing"

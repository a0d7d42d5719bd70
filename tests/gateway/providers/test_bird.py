"""Bird (new platform): the messagebird-signature HMAC (the vector; no official SDK implements
it) and sms.outbound normalization."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dlrhub_common.status_names import status_label
from gateway.errors import Malformed, Unauthenticated
from gateway.providers.base import InboundRequest
from gateway.providers.bird import Bird, BirdCredentials, sign, signing_message
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "bird"
URL = "https://dlr.example.com/webhooks/bird?tenant=acme"


def body_for(message_id: str = "msg-1", status: str = "delivered") -> bytes:
    payload = {"id": message_id, "status": status, "lastStatusAt": "2024-07-01T08:40:59.000Z"}
    return json.dumps({"service": "channels", "event": "sms.outbound", "payload": payload}).encode()


def signed(body: bytes, key: str, stamp: int | None = None, url: str = URL) -> InboundRequest:
    stamp_text = str(int(time.time()) if stamp is None else stamp)
    headers = {
        "messagebird-signature": sign(stamp_text, url, body, key),
        "messagebird-request-timestamp": stamp_text,
    }
    return inbound(url, headers=headers, body=body, content_type="application/json")


def endpoint(*keys: str, now: float | None = None) -> Bird:
    clock = (lambda: now) if now is not None else time.time
    return Bird("", BirdCredentials(signing_key=",".join(keys)), clock=clock)


class TestBirdContract(TimestampedProviderContract):
    provider = Bird
    sample_statuses = ("accepted", "queued", "sent", "delivered", "undelivered", "failed")

    def credentials(self, *secrets: str) -> BirdCredentials:
        return BirdCredentials(signing_key=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return signed(body_for(message_id), secret)

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, url=request.url.replace("acme", "evil"))

    def stale_request(self, secret: str) -> InboundRequest:
        return signed(body_for(), secret, int(time.time()) - 301)


@pytest.mark.parametrize("vector", signature_vectors("bird"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    stamp = int(vector["headers"]["messagebird-request-timestamp"])
    body = vector["body"].encode()
    request = inbound(
        vector["url"], headers=vector["headers"], body=body, content_type="application/json"
    )
    assert vector["valid"]
    report = first_report(endpoint(vector["secret"], now=stamp + 10).handle(request))
    assert (report.message_id, status_label(report.status)) == (
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "delivered",
    )
    for changed in (
        dataclasses.replace(request, body=body.replace(b"delivered", b"sent")),
        dataclasses.replace(request, url=vector["url"] + "?x=1"),
    ):
        with pytest.raises(Unauthenticated):
            endpoint(vector["secret"], now=stamp + 10).verify(changed)
    with pytest.raises(Unauthenticated) as caught:
        endpoint(vector["secret"], now=stamp + 301).verify(request)
    assert caught.value.label == "stale"


def test_the_documented_algorithm_written_out() -> None:
    """Bird documents HMAC-SHA256(key, ts + "\\n" + url + "\\n" + sha256(body)); re-derived
    independently of the module's helper (no SDK implements it)."""
    body, stamp, key = b'{"a":1}', "1719823259", "k"
    digest = hashlib.sha256(body).digest()
    expected = base64.b64encode(
        hmac.new(
            key.encode(), stamp.encode() + b"\n" + URL.encode() + b"\n" + digest, "sha256"
        ).digest()
    ).decode()
    assert signing_message(stamp, URL, body) == f"{stamp}\n{URL}\n".encode() + digest
    assert sign(stamp, URL, body, key) == expected


def test_a_failed_message_is_normalized() -> None:
    body = (PAYLOADS / "delivery_failed.json").read_bytes()
    report = first_report(endpoint("k").handle(signed(body, "k")))
    assert report.message_id == "5e0fb8a4-3d0c-4c3a-9a65-1b9fd0a2c0de"
    assert (status_label(report.status), report.provider_status) == (
        "undelivered",
        "delivery_failed",
    )
    assert (report.recipient, report.sender, report.client_ref) == (
        "+31612345678",
        "Acme",
        "order-88",
    )
    assert (report.segments, report.provider_status_group) == (2, "sms.outbound")
    assert (report.error.code, report.error.name, report.error.group) == (
        "15005",
        "unknown_subscriber",
        "sms-messagebird",
    )
    assert report.error.description.startswith("details: unknown subscriber")
    assert report.event_time.ToJsonString() == "2024-07-01T08:41:10Z"


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"lastStatusAt": "yesterday"}, "2024-07-01T08:41:10.500Z"),  # then updatedAt
        ({"lastStatusAt": None, "updatedAt": "2024-07-01 08:41"}, None),  # receive time
    ],
)
def test_event_time_falls_back_to_updated_at_then_receive_time(
    times: dict[str, object], expected: str | None
) -> None:
    event = json.loads((PAYLOADS / "delivery_failed.json").read_text())
    event["payload"].update(times)
    body = json.dumps(event).encode()
    parsed = endpoint("k").handle(signed(body, "k"))
    (report,) = parsed.reports
    if expected is None:
        assert not report.HasField("event_time")
    else:
        assert report.event_time.ToJsonString() == expected
    assert [name for name, _ in parsed.dropped] == ["event_time"]


def test_unreadable_information_is_left_out() -> None:
    event = json.loads((PAYLOADS / "delivery_failed.json").read_text())
    event["payload"]["receiver"]["contacts"][0]["identifierValue"] = "+3161"
    event["payload"]["reason"] = {"text": "unknown subscriber"}
    event["payload"]["reference"] = ["order-88"]
    parsed = endpoint("k").handle(signed(json.dumps(event).encode(), "k"))
    (report,) = parsed.reports
    assert status_label(report.status) == "undelivered"
    assert (report.recipient, report.client_ref) == ("", "")
    assert not report.HasField("error")
    assert sorted(name for name, _ in parsed.dropped) == ["client_ref", "error_text", "recipient"]


@pytest.mark.parametrize(
    ("status", "canonical"),
    [
        ("accepted", "accepted"),
        ("scheduled", "accepted"),
        ("processing", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sending_failed", "failed"),
        ("delivery_failed", "undelivered"),
        ("something_else", "unknown"),
    ],
)
def test_status_table(status: str, canonical: str) -> None:
    report = first_report(endpoint("k").handle(signed(body_for(status=status), "k")))
    assert status_label(report.status) == canonical


def test_inbound_events_are_quarantined_and_bad_envelopes_refused() -> None:
    inbound_event = body_for().replace(b"sms.outbound", b"sms.inbound")
    assert endpoint("k").handle(signed(inbound_event, "k")).quarantined
    with pytest.raises(Malformed):
        endpoint("k").handle(signed(b'{"event": "sms.outbound"}', "k"))

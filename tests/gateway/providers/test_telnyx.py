"""Telnyx: Ed25519 signatures (the vector and Telnyx's own verifier), the 300 s window,
per-recipient statuses."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from dlrhub_common.settings import ConfigError, load
from dlrhub_common.status_names import status_label
from gateway.errors import Malformed, PayloadTooLarge, Unauthenticated
from gateway.providers.base import InboundRequest, SampleUnavailable
from gateway.providers.telnyx import (
    Telnyx,
    TelnyxCredentials,
    public_key_of,
    sign,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "telnyx"
URL = "https://dlr.example.com/webhooks/telnyx"


def seed(secret: str) -> bytes:
    """A test key pair per name: the private key seed is the name's SHA-256."""
    return hashlib.sha256(secret.encode()).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def event_body(message_id: str = "msg-1", status: str = "delivered") -> bytes:
    data = json.loads((PAYLOADS / "finalized_delivered.json").read_text())
    data["data"]["payload"]["id"] = message_id
    data["data"]["payload"]["to"][0]["status"] = status
    return json.dumps(data).encode()


def signed(body: bytes, secret: str, stamp: int | None = None) -> InboundRequest:
    stamp_text = str(int(time.time()) if stamp is None else stamp)
    headers = {
        "telnyx-signature-ed25519": sign(body, stamp_text, seed(secret)),
        "telnyx-timestamp": stamp_text,
    }
    return inbound(URL, headers=headers, body=body, content_type="application/json")


def endpoint(*public_keys: str, now: float | None = None) -> Telnyx:
    clock = (lambda: now) if now is not None else time.time
    return Telnyx("", TelnyxCredentials(public_key=",".join(public_keys)), clock=clock)


def keyed() -> Telnyx:
    """An endpoint trusting the test key "k"."""
    return endpoint(public_key_of(seed("k")))


class TestTelnyxContract(TimestampedProviderContract):
    provider = Telnyx
    sample_statuses = ("queued", "sent", "delivered", "undelivered", "failed", "expired", "unknown")

    def credentials(self, *secrets: str) -> TelnyxCredentials:
        keys = ",".join(public_key_of(seed(secret)) for secret in secrets)
        sample_key = b64(seed(secrets[0])) if secrets else ""
        return TelnyxCredentials(public_key=keys, sample_signing_key=sample_key)

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return signed(event_body(message_id), secret)

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"delivered", b"sent"))

    def stale_request(self, secret: str) -> InboundRequest:
        return signed(event_body(), secret, int(time.time()) - 301)


@pytest.mark.parametrize("vector", signature_vectors("telnyx"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    stamp = int(vector["headers"]["telnyx-timestamp"])
    request = inbound(
        URL,
        headers=vector["headers"],
        body=vector["body"].encode(),
        content_type="application/json",
    )
    assert vector["valid"]
    assert public_key_of(bytes.fromhex(vector["private_key_seed_hex"])) == vector["public_key_b64"]
    assert endpoint(vector["public_key_b64"], now=stamp + 10).verify(request) == "ed25519"
    with pytest.raises(Unauthenticated) as caught:
        endpoint(vector["public_key_b64"], now=stamp + 301).verify(request)
    assert caught.value.label == "stale"
    with pytest.raises(Unauthenticated):
        endpoint(vector["public_key_b64"], now=stamp - 301).verify(request)
    forged_time = dataclasses.replace(
        request, headers={**request.headers, "telnyx-timestamp": str(stamp + 1)}
    )
    with pytest.raises(Unauthenticated):
        endpoint(vector["public_key_b64"], now=stamp + 10).verify(forged_time)
    other_key = public_key_of(seed("someone else"))
    with pytest.raises(Unauthenticated):
        endpoint(other_key, now=stamp + 10).verify(request)


@pytest.mark.parametrize("status", ["delivered", "sending_failed"])
def test_telnyx_verifier_accepts_what_we_sign(status: str) -> None:
    """Telnyx's SDK verifies our signatures (it checks the clock: signed now); and the
    changed body, timestamp or key it rejects, we reject too."""
    body = event_body(status=status)
    request = signed(body, "key-1")
    public = public_key_of(seed("key-1"))
    verify_webhook_signature(body, dict(request.headers), public)
    assert endpoint(public).verify(request) == "ed25519"
    for changed in (
        dataclasses.replace(request, body=body + b" "),
        dataclasses.replace(
            request,
            headers={
                **request.headers,
                "telnyx-timestamp": str(int(request.headers["telnyx-timestamp"]) - 1),
            },
        ),
    ):
        with pytest.raises(WebhookVerificationError):
            verify_webhook_signature(changed.body, dict(changed.headers), public)
        with pytest.raises(Unauthenticated):
            endpoint(public).verify(changed)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(body, dict(request.headers), public_key_of(seed("key-2")))


def test_public_keys_are_validated_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_TELNYX_PUBLIC_KEY", "bm90IGEga2V5")
    with pytest.raises(ConfigError) as caught:
        load(Telnyx.settings_class)
    assert "DLRHUB_TELNYX_PUBLIC_KEY" in str(caught.value)
    assert not TelnyxCredentials(sample_signing_key=b64(seed("x"))).configured()


def test_samples_need_a_private_key() -> None:
    with pytest.raises(SampleUnavailable, match="DLRHUB_TELNYX_SAMPLE_SIGNING_KEY"):
        endpoint(public_key_of(seed("x"))).sample(URL, "m", "delivered")


def test_an_event_is_normalized() -> None:
    body = (PAYLOADS / "finalized_delivered.json").read_bytes()
    report = first_report(keyed().handle(signed(body, "k")))
    assert report.message_id == "b301ed3f-1490-491f-995f-6e64e69674d4"
    assert report.event_id == "4ee8c3a6-4995-4309-a3c6-38e3db9ea4be"
    assert (status_label(report.status), report.provider_status) == ("delivered", "delivered")
    assert (report.provider_status_group, report.final) == ("message.finalized", True)
    assert (report.recipient, report.sender, report.segments) == ("+18665550001", "+18445550001", 1)
    assert (report.price.amount, report.price.currency) == ("0.0051", "USD")
    assert report.event_time.ToJsonString() == "2019-12-09T21:32:14.148Z"
    assert report.sent_time.ToJsonString() == "2019-12-09T21:32:13.552Z"
    assert not report.parent_message_id


@pytest.mark.parametrize(
    ("event_type", "occurred_at", "expected"),
    [
        ("message.finalized", "2019-12-09 21:32", "2019-12-09T21:32:14.148Z"),  # completed_at
        ("message.finalized", None, "2019-12-09T21:32:14.148Z"),
        ("message.sent", "yesterday", None),  # not final: completed_at is not its time
    ],
)
def test_event_time_falls_back_to_completed_at_then_receive_time(
    event_type: str, occurred_at: str | None, expected: str | None
) -> None:
    event = json.loads((PAYLOADS / "finalized_delivered.json").read_text())
    event["data"]["event_type"] = event_type
    event["data"]["occurred_at"] = occurred_at
    parsed = keyed().handle(signed(json.dumps(event).encode(), "k"))
    (report,) = parsed.reports
    if expected is None:
        assert not report.HasField("event_time")
    else:
        assert report.event_time.ToJsonString() == expected


def test_unreadable_information_is_left_out() -> None:
    event = json.loads((PAYLOADS / "finalized_delivered.json").read_text())
    payload = event["data"]["payload"]
    payload["cost"]["amount"] = "a lot"
    payload["parts"] = 1.5
    payload["sent_at"] = "1575927133"
    payload["errors"] = [{"code": "40001", "title": {"en": "Not routable"}}]
    payload["to"][0]["status"] = "delivery_failed"
    parsed = keyed().handle(signed(json.dumps(event).encode(), "k"))
    (report,) = parsed.reports
    assert (status_label(report.status), report.segments) == ("undelivered", 0)
    assert not report.price.amount
    assert not report.HasField("sent_time")
    assert not report.HasField("error")
    assert sorted(name for name, _ in parsed.dropped) == [
        "error_text",
        "price",
        "segments",
        "sent_time",
    ]


def test_each_recipient_of_a_group_message_is_a_part() -> None:
    body = (PAYLOADS / "group_mms_finalized.json").read_bytes()
    parsed = keyed().handle(signed(body, "k"))
    parent = "40385f64-5717-4562-b3fc-2c963f66afa6"
    got = [
        (r.message_id, r.parent_message_id, r.part_index, r.part_count, status_label(r.status))
        for r in parsed.reports
    ]
    assert got == [
        (f"{parent}:+18665550001", parent, 1, 2, "delivered"),
        (f"{parent}:+18665550002", parent, 2, 2, "rejected"),  # 40002: spam filtered
    ]
    assert len({report.event_id for report in parsed.reports}) == 2
    assert parsed.reports[1].error.code == "40002"
    assert parsed.reports[1].error.name == "Blocked as spam - temporary"
    assert parsed.reports[1].error.permanent is False
    assert not parsed.reports[0].HasField("error")  # the delivered recipient has no error


def test_message_level_errors_belong_to_failed_recipients_only() -> None:
    """errors[] is one list for the whole message: a recipient delivered, queued or sent
    carries none of it, a failed one carries it, as does a lone recipient that failed."""
    data = json.loads(event_body(status="delivered"))
    payload = data["data"]["payload"]
    payload["to"] = [
        {"phone_number": "+18665550001", "status": "delivered"},
        {"phone_number": "+18665550002", "status": "delivery_failed"},
        {"phone_number": "+18665550003", "status": "sent"},
    ]
    payload["errors"] = [{"code": "40300", "title": "Blocked due to STOP message"}]
    parsed = keyed().handle(signed(json.dumps(data).encode(), "k"))
    got = [
        (status_label(r.status), r.error.code, r.error.permanent if r.HasField("error") else None)
        for r in parsed.reports
    ]
    assert got == [("delivered", "", None), ("rejected", "40300", True), ("sent", "", None)]


@pytest.mark.parametrize(
    ("status", "code", "canonical", "permanent"),
    [
        ("delivery_failed", "40003", "rejected", True),  # blocked as spam, for good
        ("delivery_failed", "40002", "rejected", False),  # spam filtered, for now
        ("delivery_failed", "40001", "rejected", True),  # landline / not routable
        ("delivery_failed", "40012", "rejected", True),  # invalid number
        ("delivery_failed", "40006", "undelivered", False),  # unreachable
        ("sending_failed", "40011", "failed", False),  # provider-side: upstream rate limit
        ("delivery_failed", "40008", "undelivered", None),  # general: the status is kept
        ("delivery_failed", "40300", "rejected", True),  # opt-out: the recipient sent STOP
    ],
)
def test_error_meanings(status: str, code: str, canonical: str, permanent: bool | None) -> None:
    data = json.loads(event_body(status=status))
    data["data"]["payload"]["errors"] = [{"code": code, "title": "t", "detail": ""}]
    report = first_report(keyed().handle(signed(json.dumps(data).encode(), "k")))
    assert (status_label(report.status), report.error.code) == (canonical, code)
    assert report.error.description  # from the table when Telnyx sends no detail
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


@pytest.mark.parametrize(
    ("status", "canonical"),
    [
        ("queued", "queued"),
        ("sending", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("delivery_failed", "undelivered"),
        ("sending_failed", "failed"),
        ("expired", "expired"),
        ("delivery_unconfirmed", "unknown"),
        ("new_one", "unknown"),
    ],
)
def test_status_table(status: str, canonical: str) -> None:
    report = first_report(keyed().handle(signed(event_body(status=status), "k")))
    assert status_label(report.status) == canonical


def test_inbound_and_broken_events_are_quarantined() -> None:
    data = json.loads(event_body())
    data["data"]["event_type"] = "message.received"
    parsed = keyed().handle(signed(json.dumps(data).encode(), "k"))
    assert "not an outbound" in parsed.quarantined[0].reason
    data["data"]["event_type"] = "message.sent"
    data["data"]["payload"]["to"] = []
    assert keyed().handle(signed(json.dumps(data).encode(), "k")).quarantined
    with pytest.raises(Malformed):
        keyed().handle(signed(b'{"data": {}}', "k"))


def test_more_recipients_than_allowed_are_refused_before_normalizing() -> None:
    data = json.loads(event_body())
    data["data"]["payload"]["to"] = data["data"]["payload"]["to"] * 3
    provider = keyed()
    provider.max_items = 2
    with pytest.raises(PayloadTooLarge, match="more than 2 reports"):
        provider.parse(signed(json.dumps(data).encode(), "k"))

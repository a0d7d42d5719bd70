"""Sinch: HMAC signature headers (vectors and the official SDK) or Basic credentials;
recipient and batch reports."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sinch.domains.authentication.sinch_events.v1.authentication_validation import (
    calculate_sinch_event_signature,
    validate_sinch_event_signature_with_nonce,
)

from dlrhub_common.status_names import status_label
from gateway.auth.basic import authorization as basic_authorization
from gateway.errors import Malformed, PayloadTooLarge, Unauthenticated, UnsupportedMediaType
from gateway.providers import sinch
from gateway.providers.base import InboundRequest
from gateway.providers.sinch import Sinch, SinchCredentials, sign, sign_now
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import (
    ProviderContract,
    TimestampedProviderContract,
    first_report,
)
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "sinch"
URL = "https://dlr.example.com/webhooks/sinch"
ITEM = {
    "type": "recipient_delivery_report_sms",
    "batch_id": "batch-1",
    "recipient": "46700000001",
    "status": "Delivered",
    "code": 0,
    "at": "2024-06-06T08:17:19.210Z",
}


def endpoint(now: float | None = None, **credentials: Any) -> Sinch:
    clock = (lambda: now) if now is not None else time.time
    return Sinch("", SinchCredentials(**credentials), clock=clock)


def json_request(body: bytes, headers: dict[str, str] | None = None) -> InboundRequest:
    return inbound(URL, headers=headers or {}, body=body, content_type="application/json")


def body_of(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode()


def signed_body(message_id: str) -> bytes:
    batch, _, recipient = message_id.rpartition(":")
    return body_of({**ITEM, "batch_id": batch or "b", "recipient": recipient})


class TestSinchSignatureContract(TimestampedProviderContract):
    provider = Sinch
    message_id = "b:msg-1"
    sample_statuses = (
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "expired",
        "rejected",
        "unknown",
    )

    def credentials(self, *secrets: str) -> SinchCredentials:
        return SinchCredentials(webhook_secret=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        body = signed_body(message_id)
        return json_request(body, sign_now(body, secret))

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"Delivered", b"Failed"))

    def stale_request(self, secret: str) -> InboundRequest:
        body = body_of(ITEM)
        stamp = str(int(time.time()) - 2 * 24 * 3600)
        headers = {
            "x-sinch-webhook-signature": sign(body, "n", stamp, secret),
            "x-sinch-webhook-signature-nonce": "n",
            "x-sinch-webhook-signature-timestamp": stamp,
        }
        return json_request(body, headers)

    def sample_id(self, status: str) -> str:
        return f"batch-{status}:+46700000001"


class TestSinchBasicContract(ProviderContract):
    provider = Sinch
    message_id = "b:msg-1"

    def credentials(self, *secrets: str) -> SinchCredentials:
        return SinchCredentials(basic_auth=",".join(f"sinch:{secret}" for secret in secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        basic = basic_authorization(f"sinch:{secret}")
        return json_request(signed_body(message_id), {"Authorization": basic})

    def tampered(self, request: InboundRequest) -> InboundRequest:
        # Basic credentials do not cover the body; tampering the credentials is what fails.
        forged = basic_authorization("sinch:guess")
        return dataclasses.replace(request, headers={**request.headers, "authorization": forged})

    def sample_id(self, status: str) -> str:
        return f"batch-{status}:+46700000001"


@pytest.mark.parametrize("vector", signature_vectors("sinch"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    headers = vector["headers"]
    stamp = next(value for name, value in headers.items() if name.lower().endswith("timestamp"))
    provider = endpoint(now=int(stamp) + 10, webhook_secret=vector["secret"])
    request = json_request(vector["body"].encode(), headers)
    assert vector["valid"]
    assert provider.verify(request) == "sinch_hmac"
    nonce = next(value for name, value in headers.items() if name.lower().endswith("nonce"))
    assert vector["string_to_sign"] == f"{vector['body']}.{nonce}.{stamp}"
    with pytest.raises(Unauthenticated):
        provider.verify(dataclasses.replace(request, body=request.body + b" "))
    with pytest.raises(Unauthenticated) as caught:
        endpoint(now=int(stamp) + 2 * 24 * 3600, webhook_secret=vector["secret"]).verify(request)
    assert caught.value.label == "stale"
    if vector["id"] == "sinch-21":
        report = first_report(provider.handle(request))
        assert report.message_id == "01W4FFL35P4NC4K35SMSBATCH9:+12017777777"


@settings(max_examples=60, deadline=None)
@given(
    text_value=st.text(max_size=30),
    secret=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=","),
        min_size=1,
        max_size=20,
    ),
    nonce=st.from_regex(r"[0-9A-Z]{1,26}", fullmatch=True),
)
def test_sinch_sdk_signatures_are_accepted(text_value: str, secret: str, nonce: str) -> None:
    """Sinch's SDK signs; we verify, and its validator accepts what we sign."""
    body = json.dumps({**ITEM, "client_reference": text_value}).encode()
    stamp = str(int(time.time()))
    signed_data = f"{body.decode()}.{nonce}.{stamp}"
    headers = {
        "x-sinch-webhook-signature": calculate_sinch_event_signature(signed_data, secret),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": stamp,
    }
    assert endpoint(webhook_secret=secret).verify(json_request(body, headers)) == "sinch_hmac"
    ours = {**headers, "x-sinch-webhook-signature": sign(body, nonce, stamp, secret)}
    assert validate_sinch_event_signature_with_nonce(secret, ours, body.decode())
    for changed in (
        {**headers, "x-sinch-webhook-signature-nonce": nonce + "X"},
        {**headers, "x-sinch-webhook-signature-timestamp": str(int(stamp) - 1)},
    ):
        with pytest.raises(Unauthenticated):
            endpoint(webhook_secret=secret).verify(json_request(body, changed))
    with pytest.raises(Unauthenticated):
        endpoint(webhook_secret=secret + "x").verify(json_request(body, headers))


def test_a_signature_must_pass_even_when_basic_would() -> None:
    body = body_of(ITEM)
    basic = basic_authorization("u:p")
    headers = {**sign_now(body, "wrong"), "Authorization": basic}
    both = endpoint(webhook_secret="right", basic_auth="u:p")
    with pytest.raises(Unauthenticated):
        both.verify(json_request(body, headers))
    assert both.verify(json_request(body, {"Authorization": basic})) == "basic"
    only_basic = endpoint(basic_auth="u:p")
    with pytest.raises(Unauthenticated) as caught:
        only_basic.verify(json_request(body, sign_now(body, "right")))
    assert caught.value.label == "invalid"


def test_a_recipient_report_is_normalized() -> None:
    request = json_request((PAYLOADS / "recipient_failed.json").read_bytes())
    report = first_report(endpoint(webhook_secret="s").parse(request))
    assert report.message_id == "01FC66621Q7YKR119Z8PMV1QPQ:+44231235674"
    assert (report.batch_id, report.recipient) == ("01FC66621Q7YKR119Z8PMV1QPQ", "+44231235674")
    assert (status_label(report.status), report.provider_status) == ("failed", "Failed")
    assert (report.error.code, report.error.description) == ("402", "Message unroutable")
    assert (report.sender, report.client_ref, report.segments) == ("Acme", "order-7", 2)
    assert report.event_time.ToJsonString() == "2022-08-30T08:16:08Z"  # operator_status_at
    assert json.loads(report.raw)["operator"] == "35000"


def test_a_full_batch_report_becomes_one_report_per_recipient() -> None:
    request = json_request((PAYLOADS / "batch_full.json").read_bytes())
    parsed = endpoint(webhook_secret="s").parse(request)
    got = [(r.message_id, status_label(r.status), r.error.code) for r in parsed.reports]
    assert got == [
        ("01W4FFL35P4NC4K35SMSBATCH1:+46700000001", "delivered", ""),
        ("01W4FFL35P4NC4K35SMSBATCH1:+46700000002", "delivered", ""),
        ("01W4FFL35P4NC4K35SMSBATCH1:+46700000003", "undelivered", "404"),
    ]
    assert parsed.reports[2].error.permanent is False
    assert all(report.client_ref == "campaign-9" for report in parsed.reports)
    assert json.loads(parsed.reports[2].raw)["statuses"][0]["recipients"] == ["46700000003"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("batch_summary.json", "summary batch report"), ("mo_text.json", "not a delivery report")],
)
def test_what_cannot_become_reports_is_quarantined(name: str, reason: str) -> None:
    parsed = endpoint(webhook_secret="s").parse(json_request((PAYLOADS / name).read_bytes()))
    assert not parsed.reports
    assert reason in parsed.quarantined[0].reason


@pytest.mark.parametrize(
    ("status", "code", "canonical"),
    [
        ("Queued", 400, "queued"),
        ("DISPATCHED", 401, "sent"),
        ("delivered", 0, "delivered"),
        ("Failed", 404, "undelivered"),
        ("Failed", 413, "failed"),
        ("Expired", 406, "expired"),
        ("Rejected", 0, "rejected"),
        ("Deleted", 0, "undelivered"),
        ("Aborted", 0, "failed"),
        ("Cancelled", 407, "failed"),
        ("Unknown", 0, "unknown"),
        ("Brand-new", 0, "unknown"),
    ],
)
def test_status_table(status: str, code: int, canonical: str) -> None:
    request = json_request(body_of({**ITEM, "status": status, "code": code}))
    report = first_report(endpoint(webhook_secret="s").parse(request))
    assert status_label(report.status) == canonical
    assert report.provider_status == status


@pytest.mark.parametrize(
    ("code", "canonical", "permanent"),
    [
        ("417", "undelivered", False),  # unreachable
        ("404", "undelivered", False),  # temporary delivery failure
        ("402", "failed", True),  # provider-side: unroutable
        ("413", "failed", True),  # the sending account is blocked: provider-side, not the recipient
    ],
)
def test_error_meanings(code: str, canonical: str, permanent: bool) -> None:
    request = json_request(body_of({**ITEM, "status": "Failed", "code": int(code)}))
    report = first_report(endpoint(webhook_secret="s").parse(request))
    assert (status_label(report.status), report.error.code) == (canonical, code)
    assert report.error.permanent is permanent


def test_bad_envelopes() -> None:
    with pytest.raises(Malformed):
        endpoint(webhook_secret="s").parse(json_request(b'{"batch_id": "b"}'))
    with pytest.raises(UnsupportedMediaType):
        endpoint(webhook_secret="s").parse(inbound(URL, form={"a": "b"}))


def test_a_batch_of_more_recipients_than_allowed_is_refused_before_normalizing() -> None:
    batch = json.loads((PAYLOADS / "batch_full.json").read_text())
    provider = endpoint(webhook_secret="s")
    provider.max_items = 2
    with pytest.raises(PayloadTooLarge, match="more than 2 reports"):
        provider.parse(json_request(body_of(batch)))
    assert sinch.recipient_count(batch) == 3
    assert sinch.recipient_count({**batch, "statuses": "x"}) == 1


def test_recipient_and_batch_reports_of_one_message_share_its_id() -> None:
    # Sinch writes +44… in per-recipient reports and 44… in batch reports.
    provider = endpoint(webhook_secret="s")
    one = first_report(
        provider.parse(json_request((PAYLOADS / "recipient_delivered_uk.json").read_bytes()))
    )
    batch = provider.parse(json_request((PAYLOADS / "batch_full_uk.json").read_bytes()))
    assert (
        one.message_id == batch.reports[0].message_id == "01HT0Q5C3S0R3XKJ2M9W1GUKBT:+447700900123"
    )
    assert one.recipient == batch.reports[0].recipient == "+447700900123"
    assert batch.reports[1].message_id == "01HT0Q5C3S0R3XKJ2M9W1GUKBT:+447700900456"
    # The raw items keep what Sinch wrote.
    assert json.loads(one.raw)["recipient"] == "+447700900123"
    assert json.loads(batch.reports[0].raw)["statuses"][0]["recipients"] == ["447700900123"]


def test_a_recipient_that_is_not_a_number_forms_the_same_id_every_time() -> None:
    provider = endpoint(webhook_secret="s")
    for written in ("alias-7", " alias-7 "):
        parsed = provider.parse(json_request(body_of({**ITEM, "recipient": written})))
        (report,) = parsed.reports
        assert report.message_id == "batch-1:alias-7"
        assert not report.recipient
        assert parsed.dropped == [("recipient", "recipient is not a possible international number")]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (
            {"operator_status_at": "2024-04-02T10:15:30Z", "at": "2024-04-02T10:15:31.552Z"},
            "2024-04-02T10:15:30Z",
        ),
        (
            {"operator_status_at": "02/04/2024 10:15", "at": "2024-04-02T10:15:31.552Z"},
            "2024-04-02T10:15:31.552Z",
        ),
        ({"at": "2024-04-02T10:15:31.552Z"}, "2024-04-02T10:15:31.552Z"),
        ({"operator_status_at": "soon", "at": "later"}, None),
        ({}, None),
    ],
)
def test_event_time_falls_back_from_operator_to_sinch_to_receive_time(
    times: dict[str, str], expected: str | None
) -> None:
    item = {key: value for key, value in ITEM.items() if key not in ("at", "operator_status_at")}
    parsed = endpoint(webhook_secret="s").parse(json_request(body_of({**item, **times})))
    (report,) = parsed.reports
    if expected is None:
        assert not report.HasField("event_time")
    else:
        assert report.event_time.ToJsonString() == expected
    unreadable = [key for key, value in times.items() if not value.startswith("2024-04-02T")]
    assert [name for name, _ in parsed.dropped] == ["event_time"] * len(unreadable)


def test_unreadable_information_in_a_recipient_report_is_left_out() -> None:
    item = {**ITEM, "number_of_message_parts": "two", "applied_originator": {"id": "Acme"}}
    parsed = endpoint(webhook_secret="s").parse(json_request(body_of(item)))
    (report,) = parsed.reports
    assert (report.segments, report.sender) == (0, "")
    assert sorted(name for name, _ in parsed.dropped) == ["segments", "sender"]

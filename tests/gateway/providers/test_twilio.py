"""Twilio: X-Twilio-Signature (vectors and the official SDK), and callback normalization."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from dlrhub_common.status_names import status_label
from gateway.auth.canonical import concatenation_problem
from gateway.errors import Malformed, Unauthenticated, UnsupportedMediaType
from gateway.providers.base import InboundRequest
from gateway.providers.twilio import (
    DECISIVE,
    PARAMETERS,
    Twilio,
    TwilioCredentials,
    sign,
    sign_json,
    signing_string,
    url_variants,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import ProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "twilio"
URL = "https://dlr.example.com/webhooks/twilio?tenant=acme"
FORM = {"MessageSid": "msg-1", "MessageStatus": "delivered", "To": "+15558675310"}


def endpoint(*tokens: str) -> Twilio:
    return Twilio("", TwilioCredentials(auth_token=",".join(tokens)))


def signed(token: str, form: dict[str, str] = FORM, url: str = URL) -> InboundRequest:
    return inbound(
        url, headers={"X-Twilio-Signature": sign(url, tuple(form.items()), token)}, form=form
    )


def payload(name: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((PAYLOADS / name).read_text())
    return loaded


class TestTwilioContract(ProviderContract):
    provider = Twilio
    sample_statuses = (
        "accepted",
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "rejected",
        "expired",
        "unknown",
    )

    def credentials(self, *secrets: str) -> TwilioCredentials:
        return TwilioCredentials(auth_token=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return signed(secret, {**FORM, "MessageSid": message_id})

    def tampered(self, request: InboundRequest) -> InboundRequest:
        form = tuple(
            (key, "undelivered" if key == "MessageStatus" else value) for key, value in request.form
        )
        return dataclasses.replace(request, form=form, body=urlencode(form).encode())


def vector_request(vector: dict[str, Any]) -> InboundRequest:
    params = vector["params"]
    if vector["body"] is not None:
        return inbound(
            vector["url"],
            headers=vector["headers"],
            body=vector["body"].encode(),
            content_type=vector["content_type"],
        )
    pairs = params.items() if isinstance(params, dict) else [tuple(pair) for pair in params]
    return inbound(
        vector["url"],
        headers={**vector["headers"], "Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(list(pairs)).encode(),
    )


@pytest.mark.parametrize("vector", signature_vectors("twilio"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    request = vector_request(vector)
    provider = endpoint(vector["secret"])
    assert vector["valid"]
    assert provider.verify(request) == "twilio_sha1"
    if vector["params"] is not None and vector["id"] != "twilio-06":
        assert signing_string(vector["url"], request.form) == vector["string_to_sign"]
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"] + "x").verify(request)


def test_json_body_is_signed_through_body_sha256() -> None:
    (vector,) = [v for v in signature_vectors("twilio") if v["id"] == "twilio-09"]
    request = vector_request(vector)
    changed = dataclasses.replace(request, body=request.body.replace(b"value", b"other"))
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"]).verify(changed)
    url, signature = sign_json(URL, b'{"a": 1}', "tok")
    ours = inbound(url, headers={"X-Twilio-Signature": signature}, body=b'{"a": 1}')
    assert endpoint("tok").verify(ours) == "twilio_sha1"


def test_port_variants_are_accepted_both_ways() -> None:
    assert url_variants("https://a.example/x?y=1") == [
        "https://a.example/x?y=1",
        "https://a.example:443/x?y=1",
    ]
    assert url_variants("http://a.example:8080/x") == [
        "http://a.example:8080/x",
        "http://a.example/x",
    ]
    signed_with_port = signed("tok", url="https://dlr.example.com:443/webhooks/twilio?tenant=acme")
    received = dataclasses.replace(signed_with_port, url=URL)
    assert endpoint("tok").verify(received) == "twilio_sha1"
    signed_without = signed("tok")
    received_with_port = dataclasses.replace(
        signed_without, url="https://dlr.example.com:443/webhooks/twilio?tenant=acme"
    )
    assert endpoint("tok").verify(received_with_port) == "twilio_sha1"


def test_shared_key_signatures_name_their_algorithm() -> None:
    validator = RequestValidator("shared-secret")
    signature = validator.compute_signature(URL, FORM, "HMAC_SHA256")
    settings_header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    request = inbound(
        URL,
        headers={
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": settings_header,
        },
        form=FORM,
    )
    assert endpoint("shared-secret").verify(request) == "twilio_sha256"
    unknown = dataclasses.replace(
        request,
        headers={**request.headers, "x-twilio-webhooks-signature-settings": "algorithm=HMAC_MD5"},
    )
    with pytest.raises(Unauthenticated):
        endpoint("shared-secret").verify(unknown)


_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    form=st.lists(
        st.tuples(st.from_regex(r"[A-Z][A-Za-z0-9]{0,10}", fullmatch=True), _VALUE),
        max_size=8,
    ),
    token=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=","),
        min_size=1,
        max_size=32,
    ),
)
def test_twilio_sdk_signatures_are_accepted(form: list[tuple[str, str]], token: str) -> None:
    """The official SDK signs; we verify. Tampering a value, the URL or the key fails."""
    pairs = (("MessageSid", "SM1"), ("MessageStatus", "sent"), *form)
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)

    class MultiDict(dict[str, list[str]]):
        """What the SDK reads repeated names from (Flask's getall)."""

        def getall(self, key: str) -> list[str]:
            return self[key]

    sdk_signature = RequestValidator(token).compute_signature(URL, MultiDict(multi))
    request = inbound(
        URL,
        headers={"X-Twilio-Signature": sdk_signature},
        body=urlencode(pairs).encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert request.form == pairs
    if concatenation_problem(URL, pairs, DECISIVE, PARAMETERS):
        with pytest.raises(Unauthenticated):  # could be re-split: refused, however signed
            endpoint(token).verify(request)
        return
    assert endpoint(token).verify(request) == "twilio_sha1"
    assert RequestValidator(token).validate(URL, MultiDict(multi), sign(URL, pairs, token))
    tampered_form = (*pairs[:-1], (pairs[-1][0], pairs[-1][1] + "x"))
    with pytest.raises(Unauthenticated):
        endpoint(token).verify(dataclasses.replace(request, form=tampered_form))
    with pytest.raises(Unauthenticated):
        endpoint(token).verify(dataclasses.replace(request, url=URL + "&x=1"))
    with pytest.raises(Unauthenticated):
        endpoint(token + "x").verify(request)


def test_every_callback_field_is_normalized() -> None:
    report = first_report(endpoint("t").parse(inbound(URL, form=payload("undelivered.json"))))
    assert report.message_id == "SM00000000000000000000000000000001"
    assert (status_label(report.status), report.provider_status) == ("undelivered", "undelivered")
    assert (report.recipient, report.sender) == ("+15558675310", "+15017122661")
    assert report.batch_id == "MG00000000000000000000000000000001"
    assert (report.error.code, report.error.description) == (
        "30003",
        "Unreachable destination handset",
    )
    assert report.error.permanent is False
    assert not report.HasField("event_time")  # Twilio sends none: rank and arrival order it
    assert json.loads(report.raw)["RawDlrDoneDate"] == "2406011230"
    read = first_report(endpoint("t").parse(inbound(URL, form=payload("whatsapp_read.json"))))
    assert (status_label(read.status), read.provider_status) == ("delivered", "read")
    assert read.recipient == "whatsapp:+15558675310"


def test_an_unreadable_recipient_is_left_out_and_the_time_is_always_the_receive_time() -> None:
    # RawDlrDoneDate is carrier-local with no zone: kept raw, never the event time, even
    # when it cannot be read; a To that is no possible number is left out, not quarantined.
    form = {**payload("undelivered.json"), "To": "+1555", "RawDlrDoneDate": "24-06-01"}
    parsed = endpoint("t").parse(inbound(URL, form=form))
    (report,) = parsed.reports
    assert (status_label(report.status), report.recipient) == ("undelivered", "")
    assert not report.HasField("event_time")
    assert parsed.dropped == [("recipient", "To is not a possible international number")]


def test_event_id_is_a_digest_of_the_signed_string_not_the_idempotency_token() -> None:
    def event_id(form: dict[str, str], token: str = "") -> str:
        headers = {"I-Twilio-Idempotency-Token": token} if token else {}
        return first_report(endpoint("t").parse(inbound(URL, headers=headers, form=form))).event_id

    first = event_id(FORM, "tok-1")
    digest = hashlib.sha256(signing_string(URL, tuple(FORM.items())).encode()).hexdigest()
    assert first == f"twilio-signed:{digest}"
    assert event_id(FORM, "tok-2") == event_id(FORM) == first  # the token is not signed
    assert event_id(dict(reversed(FORM.items()))) == first  # Twilio sorts what it signs
    assert event_id({**FORM, "MessageStatus": "sent"}) != first


@pytest.mark.parametrize(
    ("status", "code", "canonical"),
    [
        ("accepted", "", "accepted"),
        ("scheduled", "", "accepted"),
        ("queued", "", "queued"),
        ("sending", "", "queued"),
        ("sent", "", "sent"),
        ("delivered", "", "delivered"),
        ("read", "", "delivered"),
        ("undelivered", "30005", "rejected"),
        ("undelivered", "30007", "rejected"),
        ("undelivered", "30036", "expired"),
        ("failed", "30001", "failed"),
        ("failed", "", "failed"),
        ("canceled", "", "failed"),
        ("partially_delivered", "", "undelivered"),
        ("delivery_unknown", "", "unknown"),
        ("brand_new", "", "unknown"),
    ],
)
def test_status_table(status: str, code: str, canonical: str) -> None:
    form = {"MessageSid": "SM1", "MessageStatus": status, "ErrorCode": code}
    report = first_report(endpoint("t").parse(inbound(URL, form=form)))
    assert status_label(report.status) == canonical
    assert report.provider_status == status


@pytest.mark.parametrize(
    ("status", "code", "canonical", "permanent"),
    [
        ("undelivered", "21610", "rejected", True),  # opt-out: replied STOP
        ("failed", "21610", "rejected", True),
        ("undelivered", "30004", "rejected", True),  # blocked
        ("undelivered", "21614", "rejected", True),  # invalid number (not a mobile number)
        ("undelivered", "30005", "rejected", True),  # invalid number (unknown handset)
        ("failed", "30003", "undelivered", False),  # unreachable handset
        ("undelivered", "30007", "rejected", True),  # carrier violation / spam filtered
        ("failed", "30001", "failed", False),  # provider-side: queue overflow
    ],
)
def test_error_meanings(status: str, code: str, canonical: str, permanent: bool) -> None:
    form = {"MessageSid": "SM1", "MessageStatus": status, "ErrorCode": code}
    report = first_report(endpoint("t").parse(inbound(URL, form=form)))
    assert (status_label(report.status), report.error.code) == (canonical, code)
    assert report.error.permanent is permanent


def test_inbound_statuses_are_quarantined_not_dropped() -> None:
    parsed = endpoint("t").parse(inbound(URL, form={"MessageSid": "SM1", "SmsStatus": "received"}))
    assert not parsed.reports
    assert "inbound" in parsed.quarantined[0].reason


def test_envelope_errors() -> None:
    with pytest.raises(Malformed):
        endpoint("t").parse(inbound(URL, form={"MessageStatus": "sent"}))
    with pytest.raises(UnsupportedMediaType):
        endpoint("t").parse(inbound(URL, body=b"{}", content_type="application/json"))

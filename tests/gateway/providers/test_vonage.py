"""Vonage SMS API receipts: every signature method (vectors and the official SDKs), GET, form
and JSON receipts, the timestamp window, per-part receipts and normalization."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import vonage
from hypothesis import given, settings
from hypothesis import strategies as st
from vonage_http_client.auth import Auth

from dlrhub_common.status_names import status_label
from gateway.errors import Malformed, Unauthenticated
from gateway.providers.base import InboundRequest
from gateway.providers.vonage import (
    Vonage,
    VonageCredentials,
    sign,
    signature,
    signing_string,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "vonage"
URL = "https://dlr.example.com/webhooks/vonage"
METHODS = {"sha256": "sha256", "md5 (HMAC)": "md5", "md5": "md5", "sha512": "sha512"}
METHODS["md5hash"] = "md5hash"
RECEIPT = {"messageId": "msg-1", "status": "delivered", "msisdn": "447700900000", "err-code": "0"}


def endpoint(
    *secrets: str, method: str = "sha256", now: float | None = None, **extra: Any
) -> Vonage:
    creds = VonageCredentials(signature_secret=",".join(secrets), signature_method=method, **extra)
    return Vonage("", creds, clock=(lambda: now) if now is not None else time.time)


def signed_form(secret: str, params: dict[str, Any], method: str = "sha256") -> dict[str, Any]:
    params = dict(params)
    params.setdefault("nonce", "n-1")
    params["sig"] = sign(params, secret, method)
    return params


def payload(name: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((PAYLOADS / name).read_text())
    return loaded


class TestVonageContract(TimestampedProviderContract):
    provider = Vonage
    sample_statuses = (
        "sent",
        "delivered",
        "undelivered",
        "expired",
        "rejected",
        "failed",
        "unknown",
    )

    def credentials(self, *secrets: str) -> VonageCredentials:
        return VonageCredentials(signature_secret=",".join(secrets), signature_method="sha512")

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        form = signed_form(secret, {**RECEIPT, "messageId": message_id}, "sha512")
        return inbound(URL, form=form)

    def tampered(self, request: InboundRequest) -> InboundRequest:
        form = tuple((k, "failed" if k == "status" else v) for k, v in request.form)
        return dataclasses.replace(request, form=form)

    def unsigned(self, request: InboundRequest) -> InboundRequest:
        form = tuple((k, v) for k, v in request.form if k not in ("sig", "nonce", "timestamp"))
        return dataclasses.replace(request, form=form)

    def stale_request(self, secret: str) -> InboundRequest:
        old = {**RECEIPT, "timestamp": "1577887200"}  # 2020: far outside 72 hours
        return inbound(URL, form=signed_form(secret, old, "sha512"))


def _vector_params(vector: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in vector["params"].items()}


@pytest.mark.parametrize("vector", signature_vectors("vonage-sms"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    method = METHODS[vector["signature_method"]]
    params = _vector_params(vector)
    assert vector["valid"]
    assert signing_string(params) == vector["string_to_sign"].removesuffix(vector["secret"])
    assert signature(params, vector["secret"].encode(), method) == vector["expected_signature"]
    if "sig" not in params:
        return
    now = int(params["timestamp"]) + 10
    provider = endpoint(vector["secret"], method=method, now=now)
    if "messageId" not in params:  # an SDK vector of bare parameters: the verifier alone
        assert provider.verify(inbound(URL, form=params)) == f"vonage_{method}"
        return
    get = inbound(f"{URL}?{urlencode(params)}", method="GET")
    form = inbound(URL, form=params)
    as_json = inbound(URL, body=json.dumps(params).encode(), content_type="application/json")
    for request in (get, form, as_json):
        report = first_report(provider.handle(request))
        assert (report.message_id, report.auth_method) == ("0A0000001234ABCD", f"vonage_{method}")
    wrong_method = "sha1" if method != "sha1" else "sha256"
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"], method=wrong_method, now=now).verify(form)
    tampered = {**params, "status": "expired"}
    with pytest.raises(Unauthenticated):
        provider.verify(inbound(URL, form=tampered))


def test_signature_is_compared_case_insensitively() -> None:
    params = signed_form("s", {**RECEIPT, "timestamp": "1700000000"})
    params["sig"] = params["sig"].upper()
    assert endpoint("s", now=1_700_000_000).verify(inbound(URL, form=params)) == "vonage_sha256"


def test_json_numbers_are_signed_as_their_text() -> None:
    params: dict[str, Any] = {**RECEIPT, "err-code": 0, "timestamp": 1_700_000_000, "nonce": "n"}
    params["sig"] = signature(params, b"s", "sha256")
    assert "&err-code=0&" in signing_string(params)
    request = inbound(URL, body=json.dumps(params).encode(), content_type="application/json")
    assert endpoint("s", now=1_700_000_000).verify(request) == "vonage_sha256"


def test_json_objects_and_arrays_are_refused_as_ambiguous() -> None:
    """Their JSON text would carry unescaped ``&`` and ``=`` into the signed string."""
    params: dict[str, Any] = {**RECEIPT, "client-ref": ["a&err-code=6"], "timestamp": 1_700_000_000}
    params["sig"] = signature(params, b"s", "sha256")
    request = inbound(URL, body=json.dumps(params).encode(), content_type="application/json")
    with pytest.raises(Unauthenticated, match="object or array"):
        endpoint("s", now=1_700_000_000).verify(request)


def test_timestamp_window_is_configurable() -> None:
    params = signed_form("s", {**RECEIPT, "timestamp": "1700000000"})
    request = inbound(URL, form=params)
    late = 1_700_000_000 + 3600
    assert endpoint("s", now=late).verify(request)
    with pytest.raises(Unauthenticated) as caught:
        endpoint("s", now=late, timestamp_tolerance_seconds=300).verify(request)
    assert caught.value.label == "stale"
    assert endpoint("s", now=late + 10**8, timestamp_tolerance_seconds=0).verify(request)


_PARAMS = st.dictionaries(
    st.from_regex(r"[a-z][a-z-]{0,10}", fullmatch=True).filter(lambda key: key != "sig"),
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12),
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(params=_PARAMS, method=st.sampled_from(["md5", "sha1", "sha256", "sha512", "md5hash"]))
def test_vonage_sdk_signatures_are_accepted(params: dict[str, str], method: str) -> None:
    """Vonage's SDKs sign (v4 for the HMACs, v3 for md5hash); we verify; tampering fails."""
    params = {**params, "messageId": "m", "status": "delivered", "timestamp": "1700000000"}
    if method == "md5hash":
        client = vonage.Client(key="k", signature_secret="secret", signature_method=None)
        sdk_sig = client.signature(dict(params))
    else:
        sdk_sig = Auth(api_key="k", signature_secret="secret", signature_method=method).sign_params(
            dict(params)
        )
    request = inbound(URL, form={**params, "sig": sdk_sig})
    assert endpoint("secret", method=method, now=1_700_000_000).verify(request)
    ours = dict(params)
    assert sign(ours, "secret", method) == sdk_sig
    with pytest.raises(Unauthenticated):
        endpoint("other", method=method, now=1_700_000_000).verify(request)
    tampered = inbound(URL, form={**params, "status": "failed", "sig": sdk_sig})
    with pytest.raises(Unauthenticated):
        endpoint("secret", method=method, now=1_700_000_000).verify(tampered)


def test_every_receipt_field_is_normalized() -> None:
    report = first_report(endpoint("s").parse(inbound(URL, form=payload("delivered.json"))))
    assert report.message_id == "0A0000001234ABCD"
    assert (status_label(report.status), report.provider_status) == ("delivered", "delivered")
    assert (report.recipient, report.sender) == ("+447700900000", "AcmeInc")
    assert (report.mcc, report.mnc) == ("234", "10")
    assert (report.price.amount, report.client_ref) == ("0.03330000", "order-42")
    assert report.event_time.ToJsonString() == "2020-01-01T14:00:00Z"  # message-timestamp
    assert not report.HasField("error")
    assert not report.parent_message_id
    assert json.loads(report.raw)["api-key"] == "abcd1234"


def test_per_part_receipts_can_name_their_parent_by_client_ref() -> None:
    part = inbound(URL, form=payload("failed_part.json"))
    assert not first_report(endpoint("s").parse(part)).parent_message_id
    report = first_report(endpoint("s", client_ref_is_parent=True).parse(part))
    assert report.parent_message_id == "order-42"
    assert (status_label(report.status), report.error.code) == ("rejected", "6")
    assert (report.error.description, report.error.permanent) == ("Anti-Spam Rejection", True)


@pytest.mark.parametrize(
    ("status", "code", "canonical", "permanent"),
    [
        ("accepted", "0", "sent", None),
        ("buffered", "0", "sent", None),
        ("delivered", "0", "delivered", None),
        ("expired", "1", "expired", None),
        ("failed", "2", "undelivered", False),
        ("failed", "3", "rejected", True),  # absent for good: an invalid number
        ("failed", "9", "rejected", True),  # opt-out (Illegal Number: the user opted out)
        ("failed", "14", "rejected", True),  # blocked by the carrier
        ("failed", "6", "rejected", True),  # anti-spam rejection
        ("failed", "12", "undelivered", False),  # destination unreachable
        ("failed", "11", "failed", None),
        ("rejected", "9", "rejected", True),
        ("unknown", "1", "unknown", None),
        ("new-status", "", "unknown", None),
    ],
)
def test_status_table(status: str, code: str, canonical: str, permanent: bool | None) -> None:
    form = {"messageId": "m", "status": status, "err-code": code}
    report = first_report(endpoint("s").parse(inbound(URL, form=form)))
    assert status_label(report.status) == canonical
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


def test_the_event_time_is_message_timestamp_never_the_carrier_local_scts() -> None:
    # A Turkish carrier stamps scts in its local time (UTC+3): three hours "later" than
    # message-timestamp, Vonage's UTC time of the push. scts stays in raw only.
    report = first_report(
        endpoint("s").parse(inbound(URL, form=payload("delivered_local_scts.json")))
    )
    assert report.event_time.ToJsonString() == "2020-01-01T14:00:05Z"
    assert json.loads(report.raw)["scts"] == "2001011700"
    assert report.recipient == "+905321234567"


@pytest.mark.parametrize("scts", ["yesterday", "200101140000", "2013-01-01 14:00", ""])
def test_an_unreadable_scts_is_carrier_information_not_a_reason_to_quarantine(scts: str) -> None:
    parsed = endpoint("s").parse(inbound(URL, form={**payload("delivered.json"), "scts": scts}))
    (report,) = parsed.reports
    assert not parsed.quarantined
    assert not parsed.dropped
    assert (status_label(report.status), report.event_time.ToJsonString()) == (
        "delivered",
        "2020-01-01T14:00:00Z",
    )


def test_without_a_readable_message_timestamp_the_receive_time_stands_for_it() -> None:
    form = {**payload("delivered.json"), "message-timestamp": "01/01/2020 14:00"}
    parsed = endpoint("s").parse(inbound(URL, form=form))
    (report,) = parsed.reports
    assert not report.HasField("event_time")
    assert parsed.dropped == [
        ("event_time", "message-timestamp is not a date-time: '01/01/2020 14:00'")
    ]
    no_time = {
        key: value for key, value in payload("delivered.json").items() if key != "message-timestamp"
    }
    parsed = endpoint("s").parse(inbound(URL, form=no_time))
    assert not parsed.reports[0].HasField("event_time")
    assert not parsed.dropped


def test_unreadable_information_is_left_out_and_counted() -> None:
    form = {
        **payload("delivered.json"),
        "network-code": "234-10",
        "price": "n/a",
        "msisdn": "AcmeInc",
    }
    parsed = endpoint("s").parse(inbound(URL, form=form))
    (report,) = parsed.reports
    assert (report.mcc, report.mnc, report.recipient) == ("", "", "")
    assert not report.price.amount
    assert sorted(name for name, _ in parsed.dropped) == ["mcc_mnc", "price", "recipient"]


def test_unreadable_receipts_are_quarantined_and_bad_envelopes_refused() -> None:
    body = json.dumps({**RECEIPT, "status": {"name": "delivered"}}).encode()
    parsed = endpoint("s").parse(inbound(URL, body=body, content_type="application/json"))
    assert parsed.quarantined[0].reason == "status is not a string"
    with pytest.raises(Malformed):
        endpoint("s").parse(inbound(URL, form={"status": "delivered"}))
    with pytest.raises(Malformed):
        endpoint("s").parse(inbound(URL, body=b"[1]", content_type="application/json"))
    with pytest.raises(Malformed):
        endpoint("s").parse(inbound(URL, body=b"x", content_type="text/xml"))

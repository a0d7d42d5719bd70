"""Plivo: V3 / V2 signatures (vectors and the official SDK), and callback normalization."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import (
    construct_get_url,
    construct_post_url,
    get_signature_v3,
    validate_v3_signature,
)

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.status_names import status_label
from gateway.errors import Malformed, Unauthenticated, UnsupportedMediaType
from gateway.providers.base import InboundRequest
from gateway.providers.plivo import (
    Plivo,
    PlivoCredentials,
    ambiguity,
    sign_v2,
    sign_v3,
    v3_string,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import ProviderContract
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "plivo"
URL = "https://dlr.example.com/webhooks/plivo?tenant=acme"
NONCE = "71845412328127313932"
FORM = {"MessageUUID": "msg-1", "Status": "delivered", "To": "14155551234", "ErrorCode": ""}


def endpoint(*tokens: str, allow_v2: bool = False) -> Plivo:
    return Plivo("", PlivoCredentials(auth_token=",".join(tokens), allow_v2=allow_v2))


def v3_request(
    token: str, form: dict[str, str] = FORM, url: str = URL, *, ma: bool = False
) -> InboundRequest:
    pairs = tuple(form.items())
    header = "X-Plivo-Signature-Ma-V3" if ma else "X-Plivo-Signature-V3"
    return inbound(
        url,
        headers={
            header: sign_v3("POST", url, pairs, NONCE, token),
            "X-Plivo-Signature-V3-Nonce": NONCE,
        },
        form=form,
    )


def payload(name: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((PAYLOADS / name).read_text())
    return loaded


class TestPlivoV3Contract(ProviderContract):
    provider = Plivo
    sample_statuses = ("sent", "delivered", "undelivered", "failed")

    def credentials(self, *secrets: str) -> PlivoCredentials:
        return PlivoCredentials(auth_token=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return v3_request(secret, {**FORM, "MessageUUID": message_id})

    def tampered(self, request: InboundRequest) -> InboundRequest:
        form = tuple(
            (key, "undelivered" if key == "Status" else value) for key, value in request.form
        )
        return dataclasses.replace(request, form=form, body=urlencode(form).encode())


@pytest.mark.parametrize("vector", signature_vectors("plivo"), ids=lambda vector: vector["id"])
def test_signature_vectors(vector: dict[str, Any]) -> None:
    params = vector["params"] or {}
    url = vector["url"]
    if vector["method"] == "GET":
        request = inbound(url, method="GET", headers=vector["headers"])
    else:
        request = inbound(url, headers=vector["headers"], form=params)
    v2 = "X-Plivo-Signature-V3" not in vector["headers"]
    provider = endpoint(vector["secret"], allow_v2=v2)
    if v2:  # off unless allowed
        with pytest.raises(Unauthenticated, match="DLRHUB_PLIVO_ALLOW_V2"):
            endpoint(vector["secret"]).verify(request)
    if vector["valid"]:
        assert provider.verify(request) == ("plivo_v2" if v2 else "plivo_v3")
    else:
        with pytest.raises(Unauthenticated):
            provider.verify(request)
    if vector["string_to_sign"] and "X-Plivo-Signature-V3" in vector["headers"]:
        nonce = vector["headers"]["X-Plivo-Signature-V3-Nonce"]
        assert (
            v3_string(vector["method"], url, tuple(params.items())) + "." + nonce
            == vector["string_to_sign"]
        )


def test_several_comma_separated_signatures_any_may_match() -> None:
    request = v3_request("right")
    header = request.headers["x-plivo-signature-v3"]
    rotated = dataclasses.replace(
        request, headers={**request.headers, "x-plivo-signature-v3": f"bm90IGl0=,{header}"}
    )
    assert endpoint("right").verify(rotated) == "plivo_v3"


def test_main_account_signature_is_accepted() -> None:
    assert (
        endpoint("sub-token", "main-token").verify(v3_request("main-token", ma=True)) == "plivo_v3"
    )


def test_no_downgrade_to_v2_when_v3_fails() -> None:
    bad_v3 = v3_request("wrong")
    v2 = sign_v2(URL, "123", "right")
    both = dataclasses.replace(
        bad_v3,
        headers={**bad_v3.headers, "x-plivo-signature-v2": v2, "x-plivo-signature-v2-nonce": "123"},
    )
    with pytest.raises(Unauthenticated):
        endpoint("right", allow_v2=True).verify(both)
    # A V3 nonce without its signature still makes V3 the judge.
    nonce_only = dataclasses.replace(
        both, headers={k: v for k, v in both.headers.items() if k != "x-plivo-signature-v3"}
    )
    with pytest.raises(Unauthenticated, match="V3 does not match"):
        endpoint("right", allow_v2=True).verify(nonce_only)


def test_v2_alone_is_accepted_as_weaker_only_when_allowed() -> None:
    request = inbound(
        URL,
        headers={
            "X-Plivo-Signature-V2": sign_v2(URL, "55", "tok"),
            "X-Plivo-Signature-V2-Nonce": "55",
        },
        form=FORM,
    )
    assert endpoint("tok", allow_v2=True).verify(request) == "plivo_v2"
    with pytest.raises(Unauthenticated, match="DLRHUB_PLIVO_ALLOW_V2"):
        endpoint("tok").verify(request)


def test_missing_nonce_is_rejected() -> None:
    request = v3_request("tok")
    headers = {key: value for key, value in request.headers.items() if "nonce" not in key}
    with pytest.raises(Unauthenticated) as caught:
        endpoint("tok").verify(dataclasses.replace(request, headers=headers))
    assert caught.value.label == "missing"


def test_get_callbacks_sign_the_query() -> None:
    url = "https://dlr.example.com/webhooks/plivo?MessageUUID=msg-1&Status=sent&To=14155551234&ErrorCode="
    signature = sign_v3("GET", url, (), NONCE, "tok")
    request = inbound(
        url,
        method="GET",
        headers={"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE},
    )
    parsed = endpoint("tok").handle(request)
    assert [status_label(report.status) for report in parsed.reports] == ["sent"]
    forged = dataclasses.replace(request, url=url.replace("sent", "delivered"))
    with pytest.raises(Unauthenticated):
        endpoint("tok").verify(forged)


def test_get_query_with_a_separator_in_a_name_or_value_is_refused() -> None:
    """``k=v&k=v`` joins decoded parameters: an escaped ``&`` or ``=`` could merge two."""
    genuine = "https://dlr.example.com/webhooks/plivo?ErrorCode=80&MessageUUID=m&Status=failed"
    merged = "https://dlr.example.com/webhooks/plivo?ErrorCode=80%26MessageUUID%3Dm&Status=failed"
    assert v3_string("GET", merged, ()) == v3_string("GET", genuine, ())
    signature = sign_v3("GET", genuine, (), NONCE, "tok")
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}
    assert endpoint("tok").verify(inbound(genuine, method="GET", headers=headers)) == "plivo_v3"
    with pytest.raises(Unauthenticated, match="separator"):
        endpoint("tok").verify(inbound(merged, method="GET", headers=headers))
    # "=" in a value is no separator once no name holds one: a pair splits at its first "="
    with_token = genuine + "&token=YWJj%3D%3D"
    signed = {**headers, "X-Plivo-Signature-V3": sign_v3("GET", with_token, (), NONCE, "tok")}
    assert endpoint("tok").verify(inbound(with_token, method="GET", headers=signed)) == "plivo_v3"


_PARAM = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="&=#%+"), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(
    form=st.dictionaries(
        st.from_regex(r"[A-Z][A-Za-z0-9]{0,10}", fullmatch=True), _PARAM, max_size=8
    ),
    query=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True),
        max_size=3,
    ),
    token=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=","),
        min_size=1,
        max_size=30,
    ),
    nonce=st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)
def test_plivo_sdk_signatures_are_accepted(
    form: dict[str, str], query: dict[str, str], token: str, nonce: str
) -> None:
    """The official SDK signs; we verify. And what we sign, the SDK validates."""
    url = "https://dlr.example.com/webhooks/plivo" + (f"?{urlencode(query)}" if query else "")
    base = construct_post_url(url, dict(form)).decode("utf-8")
    sdk_signature = get_signature_v3(token.encode(), base, nonce.encode()).decode()
    request = inbound(
        url,
        headers={"X-Plivo-Signature-V3": sdk_signature, "X-Plivo-Signature-V3-Nonce": nonce},
        form=form,
    )
    if ambiguity(request, sorted(request.form)):  # a re-split form is refused, however signed
        with pytest.raises(Unauthenticated, match=r"appears in the signed string|contains"):
            endpoint(token).verify(request)
        return
    assert endpoint(token).verify(request) == "plivo_v3"
    ours = sign_v3("POST", url, tuple(form.items()), nonce, token)
    assert validate_v3_signature("POST", url, nonce, token, ours, dict(form))
    if form:
        key = next(iter(form))
        changed = {**form, key: form[key] + "x"}
        tampered = inbound(
            url,
            headers={"X-Plivo-Signature-V3": sdk_signature, "X-Plivo-Signature-V3-Nonce": nonce},
            form=changed,
        )
        with pytest.raises(Unauthenticated):
            endpoint(token).verify(tampered)
    with pytest.raises(Unauthenticated):
        endpoint(token + "x").verify(request)


def test_plivo_sdk_get_and_v2_agree_with_ours() -> None:
    url = "https://dlr.example.com/webhooks/plivo?b=2&a=1&a=0"
    sdk = get_signature_v3(b"tok", construct_get_url(url, {}).decode(), NONCE.encode()).decode()
    assert sign_v3("GET", url, (), NONCE, "tok") == sdk
    assert validate_signature(url, "99", sign_v2(url, "99", "tok"), "tok")


def test_every_callback_field_is_normalized() -> None:
    (report,) = endpoint("t").parse(inbound(URL, form=payload("delivered.json"))).reports
    assert report.message_id == "db3ce55a-7f1d-11e1-8ea7-1231380bc196"
    assert (report.status, report.provider_status) == (pb.DELIVERY_STATUS_DELIVERED, "delivered")
    assert (report.recipient, report.sender) == ("+14155551234", "14155550000")
    assert (report.segments, report.mcc, report.mnc, report.sequence) == (2, "310", "260", 3)
    assert (report.price.amount, report.price.unit_amount) == ("0.00700", "0.00350")
    assert not report.parent_message_id  # same as MessageUUID
    assert (report.part_index, report.part_count) == (1, 1)
    assert not report.HasField("error")
    assert report.event_time.ToJsonString() == "2024-05-01T10:00:07.250Z"
    assert report.sent_time.ToJsonString() == "2024-05-01T10:00:01.500Z"
    assert json.loads(report.raw)["DestinationCountryISO2"] == "US"


def test_error_codes_refine_failures_and_parts_are_kept() -> None:
    (report,) = endpoint("t").parse(inbound(URL, form=payload("undelivered_part.json"))).reports
    assert report.status == pb.DELIVERY_STATUS_REJECTED  # ErrorCode 30: spam, a policy refusal
    assert report.provider_status == "undelivered"
    assert (report.error.code, report.error.description, report.error.permanent) == (
        "30",
        "Spam detected",
        True,
    )
    assert report.parent_message_id == "0936ec98-7c4c-11e4-9bd8-22000afa0000"
    assert (report.part_index, report.part_count) == (2, 3)


@pytest.mark.parametrize(
    ("status", "code", "canonical", "permanent"),
    [
        ("queued", "", "queued", None),
        ("sent", "", "sent", None),
        ("read", "", "delivered", None),
        ("failed", "900", "failed", None),
        ("undelivered", "20", "undelivered", False),
        ("undelivered", "70", "rejected", True),  # permanently unavailable: invalid number
        ("undelivered", "200", "rejected", True),  # opt-out: blocked by STOP
        ("undelivered", "100", "rejected", True),  # blocked: prohibited by carrier
        ("undelivered", "50", "rejected", True),  # invalid destination number
        ("undelivered", "80", "undelivered", False),  # temporarily unavailable
        ("undelivered", "30", "rejected", True),  # spam detected
        ("failed", "90", "failed", None),
        ("rejected", "", "rejected", None),
        ("something_new", "", "unknown", None),
        ("delivered", "000", "delivered", None),
    ],
)
def test_status_table(status: str, code: str, canonical: str, permanent: bool | None) -> None:
    form = {"MessageUUID": "m", "Status": status, "ErrorCode": code}
    (report,) = endpoint("t").parse(inbound(URL, form=form)).reports
    assert status_label(report.status) == canonical
    assert report.provider_status == status
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


def test_form_without_message_uuid_is_malformed() -> None:
    with pytest.raises(Malformed):
        endpoint("t").parse(inbound(URL, form={"Status": "delivered"}))


def test_only_an_unusable_status_quarantines_the_item() -> None:
    parsed = endpoint("t").parse(inbound(URL, form={"MessageUUID": "m", "Status": " "}))
    assert not parsed.reports
    (item,) = parsed.quarantined
    assert item.reason == "Status is missing"


def test_unreadable_information_is_left_out_and_kept_raw() -> None:
    form = {
        **payload("delivered.json"),
        "To": "1415",
        "Units": "2.0",
        "Sequence": "third",
        "MCC": "3" * 9,
        "TotalAmount": "0,007",
        "SentTime": "soon",
    }
    parsed = endpoint("t").parse(inbound(URL, form=form))
    (report,) = parsed.reports
    assert report.status == pb.DELIVERY_STATUS_DELIVERED
    assert (report.recipient, report.segments, report.sequence) == ("", 0, 0)
    assert (report.mcc, report.mnc, report.price.amount) == ("", "", "")
    assert report.price.unit_amount == "0.00350"
    assert not report.HasField("sent_time")
    assert sorted(name for name, _ in parsed.dropped) == [
        "mcc_mnc",
        "price",
        "recipient",
        "segments",
        "sent_time",
        "sequence",
    ]
    assert json.loads(report.raw)["SentTime"] == "soon"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "2024-05-01T10:00:07.250Z"),  # delivered: DeliveryReportTime
        ({"DeliveryReportTime": "later"}, "2024-05-01T10:00:00.000001Z"),  # then MessageTime
        ({"DeliveryReportTime": "", "MessageTime": ""}, None),  # then the receive time
        ({"Status": "sent"}, "2024-05-01T10:00:01.500Z"),  # sent: SentTime
        ({"Status": "queued"}, "2024-05-01T10:00:00.120Z"),  # queued: QueuedTime
    ],
)
def test_event_time_per_status_with_its_fallbacks(
    changes: dict[str, str], expected: str | None
) -> None:
    parsed = endpoint("t").parse(inbound(URL, form={**payload("delivered.json"), **changes}))
    (report,) = parsed.reports
    if expected is None:
        assert not report.HasField("event_time")
    else:
        assert report.event_time.ToJsonString() == expected


def test_json_posts_are_unsupported() -> None:
    request = inbound(URL, body=b'{"MessageUUID": "m"}', content_type="application/json")
    with pytest.raises(UnsupportedMediaType):
        endpoint("t").parse(request)

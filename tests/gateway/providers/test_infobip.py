"""Infobip: Basic / HMAC / URL-token authentication, and results[] normalization."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.status_names import status_label
from gateway.auth.basic import authorization as basic_authorization
from gateway.errors import Malformed, PayloadTooLarge, Unauthenticated, UnsupportedMediaType
from gateway.providers import infobip
from gateway.providers.base import InboundRequest, InvalidItem
from gateway.providers.infobip import Infobip, InfobipCredentials, sign
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import ProviderContract
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "infobip"
URL = "https://dlr.example.com/webhooks/infobip"
ONE = {
    "results": [
        {
            "messageId": "msg-1",
            "to": "41793026727",
            "doneAt": "2019-11-09T16:00:00.000+0000",
            "status": {
                "groupId": 3,
                "groupName": "DELIVERED",
                "id": 5,
                "name": "DELIVERED_TO_HANDSET",
            },
        }
    ]
}


def body(payload: Any = ONE) -> bytes:
    return json.dumps(payload).encode("utf-8")


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": basic_authorization(f"infobip:{secret}")}


def endpoint(**credentials: Any) -> Infobip:
    return Infobip("", InfobipCredentials(**credentials))


def payload_request(name: str) -> InboundRequest:
    return inbound(
        URL,
        headers=basic("pw"),
        body=(PAYLOADS / name).read_bytes(),
        content_type="application/json",
    )


class TestBasicAuthContract(ProviderContract):
    provider = Infobip
    sample_statuses = (
        "accepted",
        "sent",
        "delivered",
        "undelivered",
        "expired",
        "rejected",
        "failed",
        "unknown",
    )

    def credentials(self, *secrets: str) -> InfobipCredentials:
        return InfobipCredentials(basic_auth=",".join(f"infobip:{secret}" for secret in secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return inbound(URL, headers=basic(secret), body=body(), content_type="application/json")

    def tampered(self, request: InboundRequest) -> InboundRequest:
        # Basic credentials do not cover the body; tampering the credentials is what fails.
        return dataclasses.replace(
            request, headers={**request.headers, "authorization": "Basic aW5mb2JpcDpYWFg="}
        )


class TestHmacContract(ProviderContract):
    provider = Infobip

    def credentials(self, *secrets: str) -> InfobipCredentials:
        return InfobipCredentials(hmac_secret=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        raw = body()
        return inbound(
            URL,
            headers={"X-Infobip-Signature": sign(raw, secret)},
            body=raw,
            content_type="application/json",
        )

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"msg-1", b"msg-2"))


class TestUrlTokenContract(ProviderContract):
    provider = Infobip

    def credentials(self, *secrets: str) -> InfobipCredentials:
        return InfobipCredentials(url_token=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return inbound(f"{URL}?token={secret}", body=body(), content_type="application/json")

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, query=(("token", "guessed"),))

    def unsigned(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, query=())


def test_vector_infobip_basic() -> None:
    (vector,) = signature_vectors("infobip")
    provider = endpoint(basic_auth=vector["secret"])
    request = inbound(
        vector["url"], headers=vector["headers"], body=body(), content_type="application/json"
    )
    assert provider.handle(request).reports
    assert basic_authorization(vector["secret"]) == vector["expected_signature"]


def test_hmac_accepts_a_sha256_prefix_and_upper_case_hex() -> None:
    raw = body()
    for value in (f"sha256={sign(raw, 'k')}", sign(raw, "k").upper()):
        request = inbound(
            URL, headers={"X-Infobip-Signature": value}, body=raw, content_type="application/json"
        )
        assert endpoint(hmac_secret="k").verify(request) == "hmac"


def test_hmac_header_name_is_configurable() -> None:
    raw = body()
    request = inbound(
        URL, headers={"X-Hub-Signature": sign(raw, "k")}, body=raw, content_type="application/json"
    )
    assert endpoint(hmac_secret="k", hmac_header="X-Hub-Signature").verify(request) == "hmac"
    with pytest.raises(Unauthenticated):
        endpoint(hmac_secret="k").verify(request)


def test_methods_are_alternatives() -> None:
    both = endpoint(basic_auth="infobip:pw", hmac_secret="k")
    raw = body()
    only_basic = inbound(URL, headers=basic("pw"), body=raw, content_type="application/json")
    assert both.verify(only_basic) == "basic"
    only_hmac = inbound(URL, headers={"X-Infobip-Signature": sign(raw, "k")}, body=raw)
    assert both.verify(only_hmac) == "hmac"
    with pytest.raises(Unauthenticated):
        both.verify(inbound(URL, headers={**basic("bad"), "X-Infobip-Signature": "00"}, body=raw))


def test_malformed_basic_header_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        endpoint(basic_auth="a:b").verify(inbound(URL, headers={"Authorization": "Basic %%%"}))


EXPECTED = {
    "MSG-ACCEPTED": ("accepted", "PENDING_ACCEPTED", "PENDING"),
    "MSG-ENROUTE": ("sent", "PENDING_ENROUTE", "PENDING"),
    "MSG-DELIVERED": ("delivered", "DELIVERED_TO_HANDSET", "DELIVERED"),
    "MSG-OPERATOR": ("sent", "DELIVERED_TO_OPERATOR", "DELIVERED"),
    "MSG-UNDELIVERED": ("undelivered", "UNDELIVERABLE_NOT_DELIVERED", "UNDELIVERABLE"),
    "MSG-EXPIRED": ("expired", "EXPIRED_EXPIRED", "EXPIRED"),
    "MSG-DLR-UNKNOWN": ("unknown", "EXPIRED_DLR_UNKNOWN", "EXPIRED"),
    "MSG-REJECTED": ("rejected", "REJECTED_NETWORK", "REJECTED"),
    "MSG-NO-CREDIT": ("failed", "REJECTED_NOT_ENOUGH_CREDITS", "REJECTED"),
    "MSG-NEW-NAME": ("delivered", "DELIVERED_SOMEHOW_NEW", "DELIVERED"),
    "MSG-NEW-GROUP": ("unknown", "SOMETHING_ELSE_ENTIRELY", "SOMETHING_ELSE"),
}


def test_every_status_group_maps() -> None:
    parsed = endpoint(basic_auth="infobip:pw").handle(payload_request("statuses.json"))
    assert not parsed.quarantined
    got = {
        report.message_id: (
            status_label(report.status),
            report.provider_status,
            report.provider_status_group,
        )
        for report in parsed.reports
    }
    assert got == EXPECTED
    assert all(report.auth_method == "basic" for report in parsed.reports)


def test_every_documented_field_is_normalized() -> None:
    reports = {
        report.message_id: report
        for report in endpoint(basic_auth="infobip:pw")
        .handle(payload_request("statuses.json"))
        .reports
    }
    accepted = reports["MSG-ACCEPTED"]
    assert accepted.batch_id == "BULK-ID-123-xyz"
    assert accepted.recipient == "+41793026727"
    assert accepted.sender == "InfoSMS"
    assert accepted.client_ref == "order-17"
    assert (accepted.price.amount, accepted.price.currency) == ("0.01", "EUR")
    assert (accepted.mcc, accepted.mnc) == ("228", "01")
    assert accepted.segments == 1
    assert accepted.sent_time.ToJsonString() == "2019-11-09T16:00:00Z"
    assert accepted.event_time.ToJsonString() == "2019-11-09T16:00:00.100Z"
    assert not accepted.HasField("error")  # NO_ERROR is no error
    delivered = reports["MSG-DELIVERED"]
    assert delivered.event_time.ToJsonString() == "2019-04-09T19:01:56.494Z"  # -0300 → UTC
    assert (delivered.mcc, delivered.mnc) == ("310", "260")
    assert (delivered.price.amount, delivered.segments) == ("0.0035", 2)
    undelivered = reports["MSG-UNDELIVERED"].error
    assert (undelivered.code, undelivered.name, undelivered.group) == (
        "27",
        "EC_ABSENT_SUBSCRIBER",
        "HANDSET_ERRORS",
    )
    assert undelivered.description == "Absent Subscriber"
    assert undelivered.HasField("permanent")
    assert undelivered.permanent is False
    assert reports["MSG-REJECTED"].error.permanent is True
    raw = json.loads(reports["MSG-NO-CREDIT"].raw)
    assert raw["status"]["name"] == "REJECTED_NOT_ENOUGH_CREDITS"
    assert not reports["MSG-NEW-GROUP"].HasField("event_time")


def test_legacy_fields_and_missing_optional_fields() -> None:
    (report,) = (
        endpoint(basic_auth="infobip:pw").handle(payload_request("legacy_minimal.json")).reports
    )
    assert report.status == pb.DELIVERY_STATUS_DELIVERED
    assert report.provider_status == "DELIVERED_TO_HANDSET"  # from the documented id
    assert report.provider_status_group == "DELIVERED"
    assert (report.sender, report.segments, report.recipient) == ("InfoSMS", 3, "+385981178")
    assert not report.HasField("price")
    assert not report.client_ref


def test_a_delivered_report_with_mccmnc_null_keeps_its_status_without_a_network() -> None:
    parsed = endpoint(basic_auth="infobip:pw").handle(payload_request("delivered_mccmnc_null.json"))
    (report,) = parsed.reports
    assert not parsed.quarantined
    assert not parsed.dropped
    assert (report.message_id, report.status) == (
        "4457938225440256-1",
        pb.DELIVERY_STATUS_DELIVERED,
    )
    assert (report.mcc, report.mnc) == ("", "")
    assert report.recipient == "+385981234567"
    assert report.event_time.ToJsonString() == "2024-03-05T09:12:47.236Z"
    assert json.loads(report.raw)["mccMnc"] == "null"


def test_unreadable_information_is_left_out_counted_and_kept_raw() -> None:
    parsed = endpoint(basic_auth="infobip:pw").handle(
        payload_request("unreadable_information.json")
    )
    (report,) = parsed.reports
    assert not parsed.quarantined
    assert report.status == pb.DELIVERY_STATUS_UNDELIVERED
    assert (report.mcc, report.mnc, report.recipient, report.segments) == ("", "", "", 0)
    assert not report.price.amount
    assert not report.price.currency
    assert not report.HasField("error")  # its description is unreadable: left out whole
    assert not report.HasField("sent_time")
    # doneAt without an offset is not the documented format: the receive time stands for it.
    assert not report.HasField("event_time")
    assert sorted(name for name, _ in parsed.dropped) == [
        "error_text",
        "event_time",
        "mcc_mnc",
        "price",
        "recipient",
        "segments",
        "sent_time",
    ]
    assert json.loads(report.raw)["mccMnc"] == "2191"


def test_invalid_items_are_quarantined_not_dropped() -> None:
    parsed = endpoint(basic_auth="infobip:pw").handle(payload_request("mixed_invalid.json"))
    # An unreadable doneAt is information: the report is kept without an event time.
    assert [report.message_id for report in parsed.reports] == ["GOOD-1", "BAD-TIME", "GOOD-2"]
    assert not parsed.reports[1].HasField("event_time")
    assert parsed.dropped == [("event_time", "doneAt is not a date-time: 'yesterday'")]
    reasons = [item.reason for item in parsed.quarantined]
    assert reasons == [
        "messageId is missing or not a string",
        "status is missing or not an object",
        "result item is not a JSON object",
    ]
    assert all(item.provider == "infobip" and item.raw for item in parsed.quarantined)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", '"results" array'),
        (b'{"results": []}', "non-empty"),
        (b'{"results": {}}', "non-empty"),
        (b'{"other": 1}', '"results" array'),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_envelopes_are_malformed(raw: bytes, reason: str) -> None:
    request = inbound(URL, headers=basic("pw"), body=raw, content_type="application/json")
    with pytest.raises(Malformed) as caught:
        endpoint(basic_auth="infobip:pw").handle(request)
    assert reason in caught.value.reason


def test_wrong_content_type_is_unsupported() -> None:
    request = inbound(URL, headers=basic("pw"), body=body(), content_type="application/xml")
    with pytest.raises(UnsupportedMediaType):
        endpoint(basic_auth="infobip:pw").handle(request)


def test_a_quarantined_result_replays() -> None:
    """Infobip quarantines one ``results[]`` entry, so that entry is what replays."""
    provider = endpoint(basic_auth="infobip:pw")
    sample = provider.sample(URL, "msg-replay", "undelivered")
    (entry,) = json.loads(sample.body)["results"]
    report = provider.parse_item(json.dumps(entry))
    assert (report.message_id, status_label(report.status)) == ("msg-replay", "undelivered")
    for garbage in ("not json", "[]", "{}"):
        with pytest.raises(InvalidItem):
            provider.parse_item(garbage)


@pytest.mark.parametrize("items", [1001, 300_000])
def test_too_many_items_are_refused_before_any_is_normalized(
    items: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed body of more items than allowed: 413 from the envelope's count (or, when it
    holds more arrays and objects than any request may, from the bytes), and no item is
    normalized."""
    normalized: list[object] = []
    monkeypatch.setattr(infobip, "normalize", normalized.append)
    raw = b'{"results":[' + b",".join([b"{}"] * items) + b"]}"
    request = inbound(URL, headers=basic("pw"), body=raw, content_type="application/json")
    with pytest.raises(PayloadTooLarge, match="more than"):
        endpoint(basic_auth="infobip:pw").handle(request)
    assert normalized == []

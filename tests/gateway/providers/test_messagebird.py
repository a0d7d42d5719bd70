"""Legacy MessageBird: MessageBird-Signature-JWT and the deprecated MessageBird-Signature
(vectors and MessageBird's own validators), and status-report normalization."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt as pyjwt
import pytest
from messagebird.error import ValidationError
from messagebird.request_validator import RequestValidator
from messagebird.signed_request import SignedRequest

from dlrhub_common.status_names import status_label
from gateway.auth import jwt
from gateway.errors import Malformed, Unauthenticated
from gateway.providers.base import InboundRequest
from gateway.providers.messagebird import (
    MessageBird,
    MessageBirdCredentials,
    legacy_message,
    sign,
    sign_legacy,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "messagebird"
BASE = "https://dlr.example.com/webhooks/messagebird"
KEY = "k" * 64  # PyJWT warns about HMAC keys shorter than the hash


def report_url(message_id: str = "msg-1", status: str = "delivered") -> str:
    return (
        f"{BASE}?id={message_id}&reference=ref-1&recipient=31612345678&status={status}"
        "&statusDatetime=2019-01-11T09%3A17%3A11%2B00%3A00"
    )


def endpoint(*keys: str, now: float | None = None) -> MessageBird:
    clock = (lambda: now) if now is not None else time.time
    return MessageBird("", MessageBirdCredentials(signing_key=",".join(keys)), clock=clock)


def jwt_get(url: str, key: str, now: float | None = None) -> InboundRequest:
    token = sign(url, b"", key, now=time.time() if now is None else now)
    return inbound(url, method="GET", headers={"MessageBird-Signature-JWT": token})


class TestMessageBirdContract(TimestampedProviderContract):
    provider = MessageBird
    sample_statuses = ("accepted", "sent", "delivered", "undelivered", "expired")

    def credentials(self, *secrets: str) -> MessageBirdCredentials:
        return MessageBirdCredentials(signing_key=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return jwt_get(report_url(message_id), secret)

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, url=request.url.replace("delivered", "expired"))

    def stale_request(self, secret: str) -> InboundRequest:
        return jwt_get(report_url(), secret, now=time.time() - 120)  # exp = nbf + 60 s


def _vector_now(vector: dict[str, Any]) -> float:
    return datetime.fromisoformat(vector["now"]).timestamp()


@pytest.mark.parametrize(
    "vector", signature_vectors("messagebird"), ids=lambda vector: vector["id"]
)
def test_signature_vectors(vector: dict[str, Any]) -> None:
    body = (vector["body"] or "").encode()
    method = vector["method"]
    request = inbound(vector["url"], method=method, headers=vector["headers"], body=body)
    if "MessageBird-Signature-JWT" in vector["headers"]:
        now = _vector_now(vector)
        provider = endpoint(vector["secret"], now=now)
        if vector["valid"]:
            assert provider.verify(request) == "messagebird_jwt"
            with pytest.raises(Unauthenticated) as caught:
                endpoint(vector["secret"], now=now + 120).verify(request)
            assert caught.value.label == "stale"
        else:
            with pytest.raises(Unauthenticated, match="url_hash"):
                provider.verify(request)
        return
    stamp = int(vector["headers"]["MessageBird-Request-Timestamp"])
    assert vector["valid"]
    assert endpoint(vector["secret"], now=stamp + 5).verify(request) == "messagebird_hmac"
    report = first_report(endpoint(vector["secret"], now=stamp + 5).handle(request))
    assert (report.message_id, status_label(report.status)) == (
        "eef0ab57a9e049be946f3821568c2b2e",
        "delivered",
    )
    with pytest.raises(Unauthenticated) as caught:
        endpoint(vector["secret"], now=stamp + 3600).verify(request)
    assert caught.value.label == "stale"
    forged = dataclasses.replace(request, query=(*request.query[:-1], ("ported", "0")))
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"], now=stamp + 5).verify(forged)


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("body", [b"", b'{"a": 1}'])
def test_messagebird_validator_accepts_what_we_sign(algorithm: str, body: bytes) -> None:
    url = report_url()
    token = sign(url, body, KEY, now=time.time(), algorithm=algorithm)
    claims = RequestValidator(KEY).validate_signature(token, url, body)
    assert claims["iss"] == "MessageBird"
    method = "POST" if body else "GET"
    request = inbound(url, method=method, headers={"MessageBird-Signature-JWT": token}, body=body)
    assert endpoint(KEY).verify(request) == "messagebird_jwt"
    for changed_url, changed_body in ((url + "&x=1", body), (url, body + b" ")):
        with pytest.raises(ValidationError):
            RequestValidator(KEY).validate_signature(token, changed_url, changed_body)
        changed = dataclasses.replace(request, url=changed_url, body=changed_body)
        with pytest.raises(Unauthenticated):
            endpoint(KEY).verify(changed)


def test_we_accept_pyjwt_tokens_and_refuse_what_messagebird_refuses() -> None:
    url = report_url()
    now = int(time.time())
    base = {"iss": "MessageBird", "nbf": now, "exp": now + 60, "url_hash": _sha(url)}
    good = pyjwt.encode(base, KEY, algorithm="HS384")
    assert endpoint(KEY).verify(jwt_request(url, good)) == "messagebird_jwt"
    refused = [
        pyjwt.encode({**base, "iss": "Someone"}, KEY, algorithm="HS256"),
        pyjwt.encode({key: v for key, v in base.items() if key != "nbf"}, KEY, algorithm="HS256"),
        pyjwt.encode({**base, "payload_hash": _sha("x")}, KEY, algorithm="HS256"),  # no body
        jwt.b64url_encode(b'{"alg":"none"}') + "." + jwt.b64url_encode(b"{}") + ".",
    ]
    for token in refused:
        with pytest.raises(ValidationError):
            RequestValidator(KEY).validate_signature(token, url, b"")
        with pytest.raises(Unauthenticated):
            endpoint(KEY).verify(jwt_request(url, token))


def jwt_request(url: str, token: str) -> InboundRequest:
    return inbound(url, method="GET", headers={"MessageBird-Signature-JWT": token})


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_messagebird_legacy_verifier_accepts_what_we_sign() -> None:
    url = report_url()
    query = tuple(parse_qsl(url.split("?", 1)[1]))
    stamp = str(int(time.time()))
    signature = sign_legacy(stamp, query, b"", KEY)
    with pytest.deprecated_call():
        assert SignedRequest(signature, stamp, "", dict(query)).verify(KEY)
    headers = {"MessageBird-Signature": signature, "MessageBird-Request-Timestamp": stamp}
    request = inbound(url, method="GET", headers=headers)
    assert endpoint(KEY).verify(request) == "messagebird_hmac"


def test_legacy_signature_escapes_names_so_merged_parameters_do_not_verify() -> None:
    """The legacy string urlencodes the sorted query: ``&`` and ``=`` in a name are escaped,
    so two parameters merged into one name sign differently (no collision to refuse)."""
    stamp = str(int(time.time()))
    query = (("id", "m-1"), ("status", "delivery_failed"), ("statusErrorCode", "6"))
    merged = (("id", "m-1"), ("status", "delivery_failed&statusErrorCode=6"))
    assert legacy_message(stamp, merged, b"") != legacy_message(stamp, query, b"")
    headers = {
        "MessageBird-Signature": sign_legacy(stamp, query, b"", KEY),
        "MessageBird-Request-Timestamp": stamp,
    }
    forged = "https://dlr.example.com/webhooks/messagebird?" + urlencode(merged)
    with pytest.raises(Unauthenticated, match="does not match"):
        endpoint(KEY).verify(inbound(forged, method="GET", headers=headers))


def test_a_failed_report_is_normalized() -> None:
    query = (PAYLOADS / "delivery_failed.query").read_text().strip()
    url = f"{BASE}?{query}"
    report = first_report(endpoint("k").handle(jwt_get(url, "k")))
    assert report.message_id == "eef0ab57a9e049be946f3821568c2b2f"
    assert (status_label(report.status), report.provider_status) == (
        "rejected",  # code 1, unknown subscriber: an invalid number
        "delivery_failed",
    )
    assert report.error.permanent is True
    assert (report.recipient, report.client_ref, report.segments) == ("+31612345678", "order-5", 2)
    assert (report.error.code, report.error.description) == ("1", "unknown subscriber")
    assert (report.price.amount, report.price.currency) == ("0.07", "EUR")
    assert (report.mcc, report.mnc) == ("204", "08")
    assert report.event_time.ToJsonString() == "2019-01-11T09:17:11Z"


@pytest.mark.parametrize(
    ("status", "canonical"),
    [
        ("scheduled", "accepted"),
        ("sent", "sent"),
        ("buffered", "sent"),
        ("delivered", "delivered"),
        ("expired", "expired"),
        ("delivery_failed", "undelivered"),
        ("whatever", "unknown"),
    ],
)
def test_status_table(status: str, canonical: str) -> None:
    report = first_report(endpoint("k").handle(jwt_get(report_url(status=status), "k")))
    assert status_label(report.status) == canonical


@pytest.mark.parametrize(
    ("code", "canonical", "permanent"),
    [
        ("103", "rejected", True),  # opt-out: the contact sent STOP
        ("13", "rejected", True),  # blocked (call barred)
        ("1", "rejected", True),  # invalid number (unknown subscriber)
        ("27", "undelivered", False),  # unreachable (absent subscriber)
        ("34", "undelivered", None),  # unlisted meaning: the status MessageBird sent is kept
    ],
)
def test_error_meanings(code: str, canonical: str, permanent: bool | None) -> None:
    url = report_url(status="delivery_failed") + f"&statusErrorCode={code}"
    report = first_report(endpoint("k").handle(jwt_get(url, "k")))
    assert (status_label(report.status), report.error.code) == (canonical, code)
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


def test_missing_id_is_malformed_and_bad_items_quarantined() -> None:
    with pytest.raises(Malformed):
        endpoint("k").handle(jwt_get(f"{BASE}?status=sent", "k"))
    parsed = endpoint("k").handle(jwt_get(f"{BASE}?id=m&status=%20", "k"))
    assert parsed.quarantined[0].reason == "status is missing"


def test_unreadable_information_is_left_out_and_the_time_falls_back_to_receive_time() -> None:
    query = (
        "id=m&status=delivered&recipient=31&mccmnc=abc&price%5Bamount%5D=seven"
        "&messagePartCount=-1&statusDatetime=2019-01-11T09%3A17%3A11"
    )
    parsed = endpoint("k").handle(jwt_get(f"{BASE}?{query}", "k"))
    (report,) = parsed.reports
    assert status_label(report.status) == "delivered"
    assert (report.recipient, report.mcc, report.price.amount, report.segments) == ("", "", "", 0)
    assert not report.HasField("event_time")  # no offset: not RFC 3339
    assert sorted(name for name, _ in parsed.dropped) == [
        "event_time",
        "mcc_mnc",
        "price",
        "recipient",
        "segments",
    ]

"""Vonage Messages API: the Bearer JWT with payload_hash (vectors, Vonage's verifier, PyJWT),
the 503 for unsigned callbacks, and normalization."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from vonage_jwt.verify_jwt import verify_signature

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.status_names import status_label
from gateway.auth import jwt
from gateway.errors import Malformed, NotReady, Unauthenticated
from gateway.providers.base import InboundRequest
from gateway.providers.vonage_messages import (
    VonageMessages,
    VonageMessagesCredentials,
    sign,
)
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

PAYLOADS = Path(__file__).parent / "payloads" / "vonage-messages"
URL = "https://dlr.example.com/webhooks/vonage-messages"
BODY = json.dumps(
    {"message_uuid": "msg-1", "status": "delivered", "to": "447700900000", "channel": "sms"}
).encode()
DIGEST = hashlib.sha256(BODY).hexdigest()
LONG_KEY = "k" * 64  # PyJWT warns about HMAC keys shorter than the hash


def endpoint(*secrets: str, now: float | None = None, **extra: Any) -> VonageMessages:
    creds = VonageMessagesCredentials(signature_secret=",".join(secrets), **extra)
    return VonageMessages("", creds, clock=(lambda: now) if now is not None else time.time)


def bearer(token: str, body: bytes = BODY) -> InboundRequest:
    return inbound(
        URL,
        headers={"Authorization": f"Bearer {token}"},
        body=body,
        content_type="application/json",
    )


class TestVonageMessagesContract(TimestampedProviderContract):
    provider = VonageMessages
    sample_statuses = ("sent", "delivered", "rejected", "failed")

    def credentials(self, *secrets: str) -> VonageMessagesCredentials:
        return VonageMessagesCredentials(signature_secret=",".join(secrets))

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        body = BODY.replace(b"msg-1", message_id.encode())
        return bearer(sign(body, secret, now=time.time()), body)

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"delivered", b"rejected"))

    def stale_request(self, secret: str) -> InboundRequest:
        return bearer(sign(BODY, secret, now=time.time() - 2 * 24 * 3600))

    def assert_refused_unsigned(self, error: Exception) -> None:
        # Vonage documents rare unsigned callbacks from an internal error: 503, so it retries.
        assert isinstance(error, NotReady), error


@pytest.mark.parametrize(
    "vector", signature_vectors("vonage-messages"), ids=lambda vector: vector["id"]
)
def test_signature_vectors(vector: dict[str, Any]) -> None:
    token = vector["headers"]["Authorization"].removeprefix("Bearer ")
    claims = pyjwt.decode(token, options={"verify_signature": False})
    now = claims["iat"] + 10
    assert vector["valid"]
    assert jwt.decode(token, [vector["secret"].encode()], now=now) == claims
    with pytest.raises(jwt.TokenError):
        jwt.decode(token, [b"another secret"], now=now)
    request = bearer(token, (vector["body"] or "").encode())
    if vector["body"] is None:
        # vonage-messages-18 is a generic HS256 token without payload_hash: the JWT layer
        # accepts it, the provider does not (it requires the body to be bound).
        with pytest.raises(Unauthenticated):
            endpoint(vector["secret"], now=now).verify(request)
        return
    assert claims == vector["jwt_claims"]
    report = first_report(endpoint(vector["secret"], now=now).handle(request))
    assert (report.message_id, report.auth_method) == (
        "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "vonage_jwt",
    )
    changed = dataclasses.replace(request, body=request.body.replace(b"delivered", b"rejected"))
    with pytest.raises(Unauthenticated):
        endpoint(vector["secret"], now=now).verify(changed)


def test_vonage_verifier_accepts_our_tokens_and_we_accept_pyjwt_ones() -> None:
    ours = sign(BODY, LONG_KEY, now=time.time())
    assert verify_signature(ours, LONG_KEY)
    assert not verify_signature(ours, LONG_KEY + "x")
    claims = {"iat": int(time.time()), "payload_hash": DIGEST}
    theirs = pyjwt.encode(claims, LONG_KEY, algorithm="HS256")
    assert endpoint(LONG_KEY).verify(bearer(theirs)) == "vonage_jwt"


def test_only_hs256_is_accepted() -> None:
    claims = {"iat": int(time.time()), "payload_hash": DIGEST}
    for algorithm in ("HS384", "HS512"):
        token = pyjwt.encode(claims, LONG_KEY, algorithm=algorithm)
        with pytest.raises(Unauthenticated):
            endpoint(LONG_KEY).verify(bearer(token))
    header = jwt.b64url_encode(b'{"alg":"none","typ":"JWT"}')
    body = jwt.b64url_encode(json.dumps(claims).encode())
    with pytest.raises(Unauthenticated):
        endpoint("secret-1").verify(bearer(f"{header}.{body}."))


def test_a_token_without_iat_or_from_the_future_is_refused() -> None:
    no_iat = jwt.encode({"payload_hash": DIGEST}, b"s")
    with pytest.raises(Unauthenticated):
        endpoint("s").verify(bearer(no_iat))
    future = jwt.encode({"payload_hash": DIGEST, "iat": int(time.time()) + 3600}, b"s")
    with pytest.raises(Unauthenticated) as caught:
        endpoint("s").verify(bearer(future))
    assert caught.value.label == "stale"


def test_other_authorization_schemes_ask_for_a_retry() -> None:
    basic = inbound(URL, headers={"Authorization": "Basic dTpw"}, body=BODY)
    with pytest.raises(NotReady):
        endpoint("s").verify(basic)


def test_every_field_is_normalized() -> None:
    (vector,) = [v for v in signature_vectors("vonage-messages") if v["body"]]
    report = first_report(endpoint("s").parse(bearer("unused", vector["body"].encode())))
    assert (status_label(report.status), report.provider_status) == ("delivered", "delivered")
    assert (report.recipient, report.sender) == ("+447700900000", "447700900001")
    assert (report.price.amount, report.price.currency) == ("0.0333", "EUR")
    assert (report.mcc, report.mnc, report.client_ref) == ("234", "10", "abc123")
    assert report.provider_status_group == "sms"
    assert report.event_time.ToJsonString() == "2020-01-01T14:00:00Z"
    body = (PAYLOADS / "delivered_multipart.json").read_bytes()
    multipart = first_report(endpoint("s").parse(bearer("unused", body)))
    assert (multipart.segments, multipart.price.amount) == (2, "0.0666")


def test_a_ttl_rejection_is_an_expiry() -> None:
    body = (PAYLOADS / "rejected_expired.json").read_bytes()
    report = first_report(endpoint("s").parse(bearer("unused", body)))
    assert (status_label(report.status), report.provider_status) == ("expired", "rejected")
    assert (report.error.code, report.error.group) == (
        "1370",
        "https://developer.vonage.com/api-errors/messages#1370",
    )
    plain = body.replace(b"Message expired: the TTL elapsed", b"Blocked by the carrier")
    rejected = first_report(endpoint("s").parse(bearer("unused", plain)))
    assert status_label(rejected.status) == "rejected"


@pytest.mark.parametrize(
    ("status", "canonical"),
    [
        ("submitted", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("rejected", "rejected"),
        ("undeliverable", "failed"),
        ("something", "unknown"),
    ],
)
def test_status_table(status: str, canonical: str) -> None:
    body = json.dumps({"message_uuid": "m", "status": status}).encode()
    assert status_label(first_report(endpoint("s").parse(bearer("x", body))).status) == canonical


def test_bad_bodies() -> None:
    with pytest.raises(Malformed):
        endpoint("s").parse(bearer("x", b'{"status": "delivered"}'))
    parsed = endpoint("s").parse(bearer("x", b'{"message_uuid": "m", "status": ["sent"]}'))
    assert parsed.quarantined[0].reason == "status is not a string"


def test_unreadable_information_is_left_out_and_the_time_falls_back() -> None:
    item = json.loads((PAYLOADS / "delivered_multipart.json").read_text())
    item.update(
        {
            "usage": 1,
            "to": "4477",
            "destination": {"network_code": "null"},
            "sms": {"count_total": "two"},
            "error": "none",
            "timestamp": "2020-01-01 14:00:00",
        }
    )
    parsed = endpoint("s").parse(bearer("x", json.dumps(item).encode()))
    (report,) = parsed.reports
    assert (report.status, report.recipient, report.segments) == (
        pb.DELIVERY_STATUS_DELIVERED,
        "",
        0,
    )
    assert (report.mcc, report.mnc, report.price.amount) == ("", "", "")
    assert not report.HasField("error")
    assert not report.HasField("event_time")  # no offset: the receive time stands for it
    assert sorted(name for name, _ in parsed.dropped) == [
        "error_text",
        "event_time",
        "price",
        "recipient",
        "segments",
    ]

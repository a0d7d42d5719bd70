"""AWS End User Messaging SMS events via SNS: the SNS signature (vector, versions 1 and 2),
the certificate URL rule, trusted directory, fetch and cache, allowed topics, subscription
confirmation, and event normalization. No network: certificates come from a directory or an
injected fetcher."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.status_names import status_label
from gateway.auth import sns_signature
from gateway.errors import Malformed, NotReady, Unauthenticated, WebhookError
from gateway.providers.aws_sns import AwsSns, AwsSnsCredentials, sample_message
from gateway.providers.base import InboundRequest, Provider
from gateway.providers.credentials import Credentials
from tests.conftest import signature_vectors
from tests.gateway.provider_cases import TimestampedProviderContract, first_report
from tests.helpers.requests import inbound

URL = "https://dlr.example.com/webhooks/aws-sns"
CERT_NAME = "SimpleNotificationService-test.pem"
CERT_URL = f"https://sns.eu-west-1.amazonaws.com/{CERT_NAME}"
(VECTOR,) = signature_vectors("aws-sns")


@functools.cache
def key_pair() -> tuple[bytes, bytes]:
    return sns_signature.signing_pair("sns.eu-west-1.amazonaws.com (test)")


def topic(name: str) -> str:
    return f"arn:aws:sns:eu-west-1:123456789012:{name}"


def notification(
    topic_arn: str, message_id: str = "msg-1", event_type: str = "TEXT_DELIVERED", **extra: Any
) -> dict[str, Any]:
    message = sample_message(message_id, event_type, time.time())
    message.update(TopicArn=topic_arn, SigningCertURL=CERT_URL, **extra)
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    return message


def post(message: dict[str, Any]) -> InboundRequest:
    return inbound(URL, body=json.dumps(message).encode(), content_type="text/plain")


class Fetcher:
    """Serves the test certificate for any URL and counts the fetches."""

    def __init__(self, pem: bytes | None = None, error: OSError | None = None) -> None:
        self.pem = key_pair()[0] if pem is None else pem
        self.error = error
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return self.pem


def endpoint(
    *topics: str, now: float | None = None, fetch: Fetcher | None = None, **extra: Any
) -> AwsSns:
    creds = AwsSnsCredentials(topic_arns=",".join(topics), **extra)
    clock = (lambda: now) if now is not None else time.time
    return AwsSns("", creds, clock=clock, fetch=fetch or Fetcher())


class TestAwsSnsContract(TimestampedProviderContract):
    provider = AwsSns
    sample_statuses = (
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "rejected",
        "expired",
        "unknown",
    )

    @pytest.fixture(autouse=True)
    def _trust_store(self, tmp_path: Path) -> None:
        certificate, key = key_pair()
        (tmp_path / CERT_NAME).write_bytes(certificate)
        self.cert_dir = tmp_path
        self.key = key.decode()

    def build(self, account: str, credentials: Credentials, *, insecure: bool = False) -> Provider:
        assert isinstance(credentials, AwsSnsCredentials)
        return AwsSns(account, credentials, insecure=insecure, fetch=None)  # the directory only

    def credentials(self, *secrets: str) -> AwsSnsCredentials:
        return AwsSnsCredentials(
            topic_arns=",".join(topic(secret) for secret in secrets),
            cert_dir=self.cert_dir,
            sample_signing_key=self.key,
        )

    def signed_request(self, secret: str, message_id: str = "msg-1") -> InboundRequest:
        return post(notification(topic(secret), message_id))

    def tampered(self, request: InboundRequest) -> InboundRequest:
        return dataclasses.replace(request, body=request.body.replace(b"DELIVERED", b"UNKNOWN"))

    def unsigned(self, request: InboundRequest) -> InboundRequest:
        message = json.loads(request.body)
        del message["Signature"]  # raw message delivery sends no signature at all
        return dataclasses.replace(request, body=json.dumps(message).encode())

    def stale_request(self, secret: str) -> InboundRequest:
        two_days_ago = datetime.fromtimestamp(time.time() - 2 * 86400, tz=UTC)
        stamp = two_days_ago.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return post(notification(topic(secret), Timestamp=stamp))


def test_signature_vector(tmp_path: Path) -> None:
    (tmp_path / "SimpleNotificationService-TEST.pem").write_text(VECTOR["cert_pem"])
    message = json.loads(VECTOR["body"])
    now = datetime.fromisoformat(message["Timestamp"]).timestamp() + 60
    creds = AwsSnsCredentials(topic_arns=message["TopicArn"], cert_dir=tmp_path)
    provider = AwsSns("", creds, clock=lambda: now, fetch=None)
    request = inbound(VECTOR["url"], headers=VECTOR["headers"], body=VECTOR["body"].encode())
    assert VECTOR["valid"]
    assert sns_signature.canonical(message).decode() == VECTOR["string_to_sign"]
    report = first_report(provider.handle(request))
    assert report.message_id == "862a8790-60c0-4430-9b2b-658bdexample"
    assert report.event_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
    assert (status_label(report.status), report.final) == ("delivered", True)
    tampered = dataclasses.replace(request, body=request.body.replace(b"T-Mobile", b"T-Mobil3"))
    with pytest.raises(Unauthenticated):
        provider.verify(tampered)
    other_topic = AwsSns(
        "", AwsSnsCredentials(topic_arns=topic("x"), cert_dir=tmp_path), fetch=None
    )
    with pytest.raises(Unauthenticated, match="TopicArn"):
        other_topic.verify(request)


def test_signature_version_1_is_sha1_and_versions_are_not_interchangeable() -> None:
    message = notification(topic("t"), SignatureVersion="1")
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    assert endpoint(topic("t")).verify(post(message)) == "sns_rsa"
    relabelled = {**message, "SignatureVersion": "2"}
    with pytest.raises(Unauthenticated):
        endpoint(topic("t")).verify(post(relabelled))
    with pytest.raises(Unauthenticated, match="SignatureVersion"):
        endpoint(topic("t")).verify(post({**message, "SignatureVersion": "3"}))


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.us-east-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ],
)
def test_certificates_come_only_from_sns_hosts(cert_url: str) -> None:
    message = notification(topic("t"))
    message["SigningCertURL"] = cert_url
    fetch = Fetcher()
    with pytest.raises(Unauthenticated, match="SigningCertURL"):
        endpoint(topic("t"), fetch=fetch).verify(post(message))
    assert fetch.urls == []  # refused before anything was fetched


def test_certificates_are_fetched_once_and_cached() -> None:
    fetch = Fetcher()
    provider = endpoint(topic("t"), fetch=fetch)
    for message_id in ("a", "b", "c"):
        provider.handle(post(notification(topic("t"), message_id)))
    assert fetch.urls == [CERT_URL]


def test_a_certificate_that_cannot_be_fetched_asks_for_a_retry() -> None:
    provider = endpoint(topic("t"), fetch=Fetcher(error=OSError("connection refused")))
    with pytest.raises(NotReady):
        provider.verify(post(notification(topic("t"))))


def test_a_wrong_certificate_is_refused() -> None:
    other, _ = sns_signature.signing_pair("someone else")
    with pytest.raises(Unauthenticated, match="does not verify"):
        endpoint(topic("t"), fetch=Fetcher(other)).verify(post(notification(topic("t"))))
    with pytest.raises(Unauthenticated, match="PEM"):
        endpoint(topic("t"), fetch=Fetcher(b"junk")).verify(post(notification(topic("t"))))


def confirmation(topic_arn: str, subscribe_url: str) -> dict[str, Any]:
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": topic_arn,
        "Message": "You have chosen to subscribe to the topic ...",
        "SubscribeURL": subscribe_url,
        "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
    }
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    return message


def test_subscriptions_are_confirmed_only_when_configured() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37"
    confirmed: list[str] = []

    def confirm(target: str) -> bytes:
        confirmed.append(target)
        return b"<ConfirmSubscriptionResponse/>"

    request = post(confirmation(topic("t"), url))
    creds = AwsSnsCredentials(topic_arns=topic("t"), confirm_subscriptions=True)
    assert AwsSns("", creds, fetch=Fetcher(), confirm=confirm).handle(request).reports == []
    assert confirmed == [url]
    off = AwsSns("", AwsSnsCredentials(topic_arns=topic("t")), fetch=Fetcher(), confirm=confirm)
    assert off.handle(request).reports == []
    assert confirmed == [url]  # not confirmed again: the setting is off
    elsewhere = post(confirmation(topic("t"), "https://evil.example/?Action=ConfirmSubscription"))
    with pytest.raises(Malformed):
        AwsSns("", creds, fetch=Fetcher(), confirm=confirm).handle(elsewhere)
    other_topic = post(confirmation(topic("other"), url))
    with pytest.raises(Unauthenticated):
        AwsSns("", creds, fetch=Fetcher(), confirm=confirm).handle(other_topic)
    assert confirmed == [url]


def test_a_failed_confirmation_asks_for_a_retry() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=1"

    def refuse(target: str) -> bytes:
        raise OSError("timed out")

    creds = AwsSnsCredentials(topic_arns=topic("t"), confirm_subscriptions=True)
    with pytest.raises(NotReady):
        AwsSns("", creds, fetch=Fetcher(), confirm=refuse).handle(
            post(confirmation(topic("t"), url))
        )


def test_the_age_window_is_generous_and_configurable() -> None:
    request = post(notification(topic("t")))
    assert endpoint(topic("t"), now=time.time() + 3 * 3600).verify(request)  # SNS retries
    with pytest.raises(Unauthenticated) as caught:
        endpoint(topic("t"), now=time.time() + 3600, timestamp_tolerance_seconds=600).verify(
            request
        )
    assert caught.value.label == "stale"


def test_every_event_field_is_normalized(tmp_path: Path) -> None:
    (tmp_path / "SimpleNotificationService-TEST.pem").write_text(VECTOR["cert_pem"])
    message = json.loads(VECTOR["body"])
    creds = AwsSnsCredentials(topic_arns=message["TopicArn"], cert_dir=tmp_path)
    provider = AwsSns("", creds, clock=lambda: 1_686_975_200, fetch=None)
    report = first_report(provider.handle(inbound(URL, body=VECTOR["body"].encode())))
    assert (report.provider_status, report.recipient, report.sender) == (
        "TEXT_DELIVERED",
        "+14255550156",
        "+12065550152",
    )
    assert (report.mcc, report.mnc, report.segments) == ("310", "800", 1)
    assert report.price.amount == "0.00581"
    assert json.loads(report.client_ref) == {"account": "bar"}
    assert report.event_time.ToJsonString() == "2023-06-17T04:11:43.470Z"
    assert report.sent_time.ToJsonString() == "2023-06-17T04:11:43.170Z"
    assert not report.HasField("error")
    assert json.loads(report.raw)["carrierName"] == "T-Mobile"


@pytest.mark.parametrize(
    ("event_type", "canonical", "permanent"),
    [
        ("TEXT_QUEUED", "queued", None),
        ("TEXT_PENDING", "sent", None),
        ("TEXT_SUCCESSFUL", "delivered", None),
        ("TEXT_DELIVERED", "delivered", None),
        ("TEXT_BLOCKED", "undelivered", None),
        ("TEXT_CARRIER_BLOCKED", "rejected", None),
        ("TEXT_SPAM", "rejected", None),
        ("TEXT_PROTECT_BLOCKED", "rejected", None),
        ("TEXT_INVALID", "rejected", None),
        ("TEXT_INVALID_MESSAGE", "rejected", None),
        ("TEXT_TTL_EXPIRED", "expired", None),
        ("TEXT_CARRIER_UNREACHABLE", "undelivered", False),
        ("TEXT_UNREACHABLE", "undelivered", False),
        ("TEXT_UNKNOWN", "unknown", None),
        ("TEXT_SOMETHING_NEW", "unknown", None),
    ],
)
def test_status_table(event_type: str, canonical: str, permanent: bool | None) -> None:
    report = first_report(
        endpoint(topic("t")).handle(post(notification(topic("t"), "m", event_type)))
    )
    assert status_label(report.status) == canonical
    if canonical not in ("queued", "sent", "delivered"):
        assert report.error.name == event_type.removeprefix("TEXT_")
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


def test_a_message_that_is_not_an_sms_event_is_quarantined() -> None:
    message = notification(topic("t"))
    message["Message"] = "not json"
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    parsed = endpoint(topic("t")).handle(post(message))
    assert parsed.quarantined[0].reason == "Message is not JSON"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"not json", "text/plain"), (b"[]", "text/plain"), (b"{}", "application/xml")],
)
def test_bad_envelopes(body: bytes, content_type: str) -> None:
    with pytest.raises(WebhookError):
        endpoint(topic("t")).handle(inbound(URL, body=body, content_type=content_type))


def test_settings_refuse_what_is_not_a_topic_arn() -> None:
    with pytest.raises(ValueError, match="topic ARN"):
        AwsSnsCredentials(topic_arns="arn:aws:sqs:eu-west-1:1:q")
    assert not AwsSnsCredentials().configured()

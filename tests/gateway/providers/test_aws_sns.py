"""AWS End User Messaging SMS events via SNS: the SNS signature (vector, versions 1 and 2),
the certificate URL rule, what is checked before a certificate is fetched, the trusted
directory, allowed topics, subscription confirmation, and event normalization. No network:
certificates come from a directory or an injected fetcher (the fetcher itself, its cache and
its HTTP are tests/gateway/auth/test_sns_certificates.py)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dlrhub_common.status_names import status_label
from gateway.auth import sns_certificates, sns_signature
from gateway.errors import Malformed, NotReady, Unauthenticated, WebhookError
from gateway.providers import dropped
from gateway.providers.aws_sns import AwsSns, AwsSnsCredentials, notification_report, sample_message
from gateway.providers.base import InboundRequest, Parsed, Provider
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
    message.update({"TopicArn": topic_arn, "SigningCertURL": CERT_URL, **extra})
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    return message


def post(message: dict[str, Any]) -> InboundRequest:
    return inbound(URL, body=json.dumps(message).encode(), content_type="text/plain")


class Fetcher:
    """Serves the test certificate for any URL and counts the fetches."""

    def __init__(self, pem: bytes | None = None, error: Exception | None = None) -> None:
        self.pem = key_pair()[0] if pem is None else pem
        self.error = error
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        return self.pem


async def handled(provider: AwsSns, request: InboundRequest) -> Parsed:
    """What the gateway does: prepare (the certificate, off the loop), then handle."""
    await provider.prepare(request)
    return provider.handle(request)


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


async def test_signature_version_1_is_sha1_and_versions_are_not_interchangeable() -> None:
    message = notification(topic("t"), SignatureVersion="1")
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    provider = endpoint(topic("t"))
    await provider.prepare(post(message))
    assert provider.verify(post(message)) == "sns_rsa"
    relabelled = {**message, "SignatureVersion": "2"}
    with pytest.raises(Unauthenticated):
        await handled(provider, post(relabelled))
    with pytest.raises(Unauthenticated, match="SignatureVersion"):
        await handled(provider, post({**message, "SignatureVersion": "3"}))


#: SigningCertURLs and whether they are SNS's: exactly https://sns.<region>.amazonaws.com
#: /<name>.pem (.com.cn for China), nothing more, nothing less.
CERTIFICATE_URLS = [
    (CERT_URL, True),
    (f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{'9c6465fa' * 4}.pem", True),
    ("https://sns.us-gov-west-1.amazonaws.com/c.pem", True),
    ("https://sns.us-iso-east-1.amazonaws.com/c.pem", True),
    ("https://sns.us-isob-east-1.amazonaws.com/c.pem", True),
    ("https://sns.eu-isoe-west-1.amazonaws.com/c.pem", True),
    ("https://sns.ap-southeast-7.amazonaws.com/c.pem", True),
    ("https://sns.cn-north-1.amazonaws.com.cn/c.pem", True),
    ("https://sns.cn-northwest-1.amazonaws.com.cn/c.pem", True),
    # scheme
    ("http://sns.us-east-1.amazonaws.com/c.pem", False),
    ("HTTPS://sns.us-east-1.amazonaws.com/c.pem", False),
    ("ftp://sns.us-east-1.amazonaws.com/c.pem", False),
    ("//sns.us-east-1.amazonaws.com/c.pem", False),
    ("https:/sns.us-east-1.amazonaws.com/c.pem", False),
    # host
    ("https://sns.us-east-1.amazonaws.com.evil.example/c.pem", False),
    ("https://evil.example/sns.us-east-1.amazonaws.com/c.pem", False),
    ("https://s3.amazonaws.com/c.pem", False),
    ("https://sns.amazonaws.com/c.pem", False),
    ("https://sns.evil.amazonaws.com/c.pem", False),
    ("https://sns.us-east.amazonaws.com/c.pem", False),
    ("https://sns.us-east-01.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1a.amazonaws.com/c.pem", False),
    ("https://sns.useast-1.amazonaws.com/c.pem", False),
    ("https://sns.usa-east-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1-1.amazonaws.com/c.pem", False),
    ("https://sns.us-fake-east-1.amazonaws.com/c.pem", False),
    ("https://sns.US-EAST-1.amazonaws.com/c.pem", False),
    ("https://SNS.us-east-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-\u0661.amazonaws.com/c.pem", False),  # an Arabic-Indic digit
    ("https://sns.us-east-1.amazonaws.com./c.pem", False),
    ("https://sns.us-east-1.amazonaws.com.cn/c.pem", False),
    ("https://sns.cn-north-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1.amazonaws.co/c.pem", False),
    ("https://xsns.us-east-1.amazonaws.com/c.pem", False),
    ("https://sns-fips.us-east-1.amazonaws.com/c.pem", False),
    ("https://sqs.us-east-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com\\@evil.example/c.pem", False),
    # userinfo and port
    ("https://user@sns.us-east-1.amazonaws.com/c.pem", False),
    ("https://user:pw@sns.us-east-1.amazonaws.com/c.pem", False),
    ("https://evil.example@sns.us-east-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com@evil.example/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com:443/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com:8443/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com:/c.pem", False),
    # path, query, fragment
    ("https://sns.us-east-1.amazonaws.com/c.txt", False),
    ("https://sns.us-east-1.amazonaws.com/c.PEM", False),
    ("https://sns.us-east-1.amazonaws.com/.pem", False),
    ("https://sns.us-east-1.amazonaws.com/", False),
    ("https://sns.us-east-1.amazonaws.com", False),
    ("https://sns.us-east-1.amazonaws.com/a/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com//c.pem", False),
    ("https://sns.us-east-1.amazonaws.com/../c.pem", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem.pem/x", False),
    ("https://sns.us-east-1.amazonaws.com/c%2Fx.pem", False),
    ("https://sns.us-east-1.amazonaws.com/c.x.pem", False),
    ("https://sns.us-east-1.amazonaws.com/" + "c" * 129 + ".pem", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem?", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem?x=1", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem#", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem#x", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem;x", False),
    # whitespace and control characters
    (" https://sns.us-east-1.amazonaws.com/c.pem", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem ", False),
    ("https://sns.us-east-1.amazonaws.com/c.pem\n", False),
    ("https://sns.us-east-1.amazonaws.com/c\t.pem", False),
    ("https://sns.us-east-1.amazonaws.com/c\x00.pem", False),
    ("", False),
]


@pytest.mark.parametrize(("cert_url", "accepted"), CERTIFICATE_URLS)
async def test_certificates_come_only_from_sns_urls(cert_url: str, accepted: bool) -> None:
    assert sns_signature.is_certificate_url(cert_url) is accepted
    message = notification(topic("t"))
    message["SigningCertURL"] = cert_url
    fetch = Fetcher()
    provider = endpoint(topic("t"), fetch=fetch)
    if accepted:  # fetched, and the signature (over content that names no URL) verifies
        assert (await handled(provider, post(message))).reports
        assert fetch.urls == [cert_url]
        return
    with pytest.raises(Unauthenticated, match="SigningCertURL"):
        await provider.prepare(post(message))
    assert fetch.urls == []  # refused before anything was fetched


@pytest.mark.parametrize("cert_url", [None, 42, ["https://sns.us-east-1.amazonaws.com/c.pem"]])
async def test_a_certificate_url_that_is_no_string_is_refused(cert_url: object) -> None:
    fetch = Fetcher()
    with pytest.raises(Unauthenticated, match="SigningCertURL"):
        await endpoint(topic("t"), fetch=fetch).prepare(
            post(notification(topic("t"), SigningCertURL=cert_url))
        )
    assert fetch.urls == []


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"TopicArn": topic("someone-elses")}, "TopicArn"),
        ({"TopicArn": None}, "TopicArn"),
        ({"Signature": None}, "no Signature"),
        ({"Signature": "not base64!"}, "base64"),
        ({"SignatureVersion": "3"}, "SignatureVersion"),
        ({"Type": "Surprise"}, "Type"),
        ({"Timestamp": "2001-01-01T00:00:00.000Z"}, "older"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
    ],
)
async def test_nothing_is_fetched_for_a_message_that_fails_a_cheaper_check(
    changes: dict[str, Any], match: str
) -> None:
    message = notification(topic("t"), "m")
    message["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com/random-4f2a.pem"
    message.update(changes)
    fetch = Fetcher()
    with pytest.raises(Unauthenticated, match=match):
        await endpoint(topic("t"), fetch=fetch).prepare(post(message))
    assert fetch.urls == []


async def test_the_topic_is_checked_first() -> None:
    """An unsigned message of another topic is refused for its topic, before anything else."""
    message = {"Type": "Notification", "TopicArn": topic("other"), "SigningCertURL": "x"}
    fetch = Fetcher()
    with pytest.raises(Unauthenticated, match="TopicArn"):
        await endpoint(topic("t"), fetch=fetch).prepare(post(message))
    assert fetch.urls == []


async def test_the_trusted_directory_is_looked_up_before_any_fetch(tmp_path: Path) -> None:
    (tmp_path / CERT_NAME).write_bytes(key_pair()[0])
    fetch = Fetcher(error=OSError("must not be called"))
    provider = endpoint(topic("t"), fetch=fetch, cert_dir=tmp_path)
    assert (await handled(provider, post(notification(topic("t"))))).reports
    assert fetch.urls == []


async def test_certificates_are_fetched_once_and_cached() -> None:
    fetch = Fetcher()
    provider = endpoint(topic("t"), fetch=fetch)
    for message_id in ("a", "b", "c"):
        await handled(provider, post(notification(topic("t"), message_id)))
    assert fetch.urls == [CERT_URL]


def test_verify_never_fetches_on_the_event_loop() -> None:
    """Without prepare, verify asks for a retry rather than fetch where it runs."""
    fetch = Fetcher()
    with pytest.raises(NotReady, match="not loaded"):
        endpoint(topic("t"), fetch=fetch).handle(post(notification(topic("t"))))
    assert fetch.urls == []


async def test_a_certificate_that_cannot_be_fetched_now_asks_for_a_retry() -> None:
    """SNS retries 5xx only, three times 20 s apart by default: a 401 would lose the report.
    NotReady (503) is no failed authentication, so the client's failure limit is not fed."""
    provider = endpoint(topic("t"), fetch=Fetcher(error=OSError("connection refused")))
    with pytest.raises(NotReady, match="connection refused") as caught:
        await provider.prepare(post(notification(topic("t"))))
    assert not isinstance(caught.value, Unauthenticated)


async def test_a_refused_certificate_is_a_failed_authentication() -> None:
    refused = sns_certificates.Refused("https://sns... answered 404")
    with pytest.raises(Unauthenticated, match="answered 404"):
        await endpoint(topic("t"), fetch=Fetcher(error=refused)).prepare(
            post(notification(topic("t")))
        )


async def test_a_wrong_certificate_is_refused() -> None:
    other, _ = sns_signature.signing_pair("someone else")
    with pytest.raises(Unauthenticated, match="does not verify"):
        await handled(endpoint(topic("t"), fetch=Fetcher(other)), post(notification(topic("t"))))
    with pytest.raises(Unauthenticated, match="PEM"):
        await endpoint(topic("t"), fetch=Fetcher(b"junk")).prepare(post(notification(topic("t"))))


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


async def test_subscriptions_are_confirmed_only_when_configured() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37"
    confirmed: list[str] = []

    def confirm(target: str) -> bytes:
        confirmed.append(target)
        return b"<ConfirmSubscriptionResponse/>"

    def provider(*, on: bool) -> AwsSns:
        creds = AwsSnsCredentials(topic_arns=topic("t"), confirm_subscriptions=on)
        return AwsSns("", creds, fetch=Fetcher(), confirm=confirm)

    request = post(confirmation(topic("t"), url))
    assert (await handled(provider(on=True), request)).reports == []
    assert confirmed == [url]
    assert (await handled(provider(on=False), request)).reports == []
    assert confirmed == [url]  # not confirmed again: the setting is off
    for elsewhere in (
        "https://evil.example/?Action=ConfirmSubscription",
        "https://user@sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
        "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
    ):
        with pytest.raises(Malformed):
            await handled(provider(on=True), post(confirmation(topic("t"), elsewhere)))
    with pytest.raises(Unauthenticated):
        await handled(provider(on=True), post(confirmation(topic("other"), url)))
    forged = {**confirmation(topic("t"), url), "Token": "changed"}
    with pytest.raises(Unauthenticated):
        await handled(provider(on=True), post(forged))
    assert confirmed == [url]


@pytest.mark.parametrize("error", [OSError("timed out"), sns_certificates.Refused("answered 403")])
async def test_a_failed_confirmation_asks_for_a_retry(error: Exception) -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=1"

    def refuse(target: str) -> bytes:
        raise error

    creds = AwsSnsCredentials(topic_arns=topic("t"), confirm_subscriptions=True)
    with pytest.raises(NotReady):
        await handled(
            AwsSns("", creds, fetch=Fetcher(), confirm=refuse), post(confirmation(topic("t"), url))
        )


async def test_the_age_window_is_generous_and_configurable() -> None:
    request = post(notification(topic("t")))
    retried = endpoint(topic("t"), now=time.time() + 3 * 3600)  # SNS retries
    assert (await handled(retried, request)).reports
    with pytest.raises(Unauthenticated) as caught:
        await endpoint(topic("t"), now=time.time() + 3600, timestamp_tolerance_seconds=600).prepare(
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
        ("TEXT_BLOCKED", "rejected", True),  # blocked: REJECTED, permanent
        ("TEXT_CARRIER_BLOCKED", "rejected", True),
        ("TEXT_SPAM", "rejected", True),  # spam filtered: REJECTED, permanent
        ("TEXT_PROTECT_BLOCKED", "rejected", True),
        ("TEXT_INVALID", "rejected", True),  # invalid number: REJECTED, permanent
        ("TEXT_INVALID_MESSAGE", "rejected", True),
        ("TEXT_TTL_EXPIRED", "expired", None),
        ("TEXT_CARRIER_UNREACHABLE", "undelivered", False),
        ("TEXT_UNREACHABLE", "undelivered", False),
        ("TEXT_UNKNOWN", "unknown", None),
        ("TEXT_SOMETHING_NEW", "unknown", None),
    ],
)
async def test_status_table(event_type: str, canonical: str, permanent: bool | None) -> None:
    report = first_report(
        await handled(endpoint(topic("t")), post(notification(topic("t"), "m", event_type)))
    )
    assert status_label(report.status) == canonical
    if canonical not in ("queued", "sent", "delivered"):
        assert report.error.name == event_type.removeprefix("TEXT_")
    if permanent is None:
        assert not report.error.HasField("permanent")
    else:
        assert report.error.permanent is permanent


async def test_a_message_that_is_not_an_sms_event_is_quarantined() -> None:
    message = notification(topic("t"))
    message["Message"] = "not json"
    message["Signature"] = sns_signature.sign(message, key_pair()[1])
    parsed = await handled(endpoint(topic("t")), post(message))
    assert parsed.quarantined[0].reason == "Message is not JSON"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"not json", "text/plain"), (b"[]", "text/plain"), (b"{}", "application/xml")],
)
async def test_bad_envelopes(body: bytes, content_type: str) -> None:
    with pytest.raises(WebhookError):
        await handled(endpoint(topic("t")), inbound(URL, body=body, content_type=content_type))


def test_settings_refuse_what_is_not_a_topic_arn() -> None:
    with pytest.raises(ValueError, match="topic ARN"):
        AwsSnsCredentials(topic_arns="arn:aws:sqs:eu-west-1:1:q")
    assert not AwsSnsCredentials().configured()


def event_message(**changes: object) -> dict[str, Any]:
    """A Notification carrying the documented TEXT_DELIVERED event, with ``changes``."""
    message = sample_message("m-1", "TEXT_DELIVERED", 1_700_000_000.0)
    event = {**json.loads(message["Message"]), **changes}
    return {**message, "Message": json.dumps(event)}


@pytest.mark.parametrize(
    ("event_timestamp", "expected"),
    [
        (1_700_000_000_000, "2023-11-14T22:13:20Z"),  # eventTimestamp, Unix milliseconds
        ("13 Nov 2023", "2023-11-14T22:13:20Z"),  # then the Notification's Timestamp
        (None, "2023-11-14T22:13:20Z"),
    ],
)
def test_event_time_falls_back_to_the_notification_timestamp(
    event_timestamp: object, expected: str
) -> None:
    message = event_message(eventTimestamp=event_timestamp)
    message["Timestamp"] = "2023-11-14T22:13:20.000Z"
    with dropped.recording() as found:
        report = notification_report(message)
    assert report.event_time.ToJsonString() == expected
    assert len(found) == (1 if isinstance(event_timestamp, str) else 0)
    no_times = event_message(eventTimestamp=None)
    no_times["Timestamp"] = "Tuesday"
    assert not notification_report(no_times).HasField("event_time")  # the receive time


def test_unreadable_information_is_left_out() -> None:
    message = event_message(
        destinationPhoneNumber="+1425",
        mcc=["310"],
        totalMessagePrice="cheap",
        totalMessageParts=-1,
        messageRequestTimestamp="earlier",
    )
    with dropped.recording() as found:
        report = notification_report(message)
    assert report.provider_status == "TEXT_DELIVERED"
    assert (report.recipient, report.mcc, report.mnc, report.segments) == ("", "", "", 0)
    assert not report.price.amount
    assert not report.HasField("sent_time")
    assert sorted(name for name, _ in found) == [
        "mcc_mnc",
        "price",
        "recipient",
        "segments",
        "sent_time",
    ]

"""AWS End User Messaging SMS events, delivered by an SNS topic's HTTPS subscription.

Each POST is one SNS message (``text/plain`` JSON); a ``Notification``'s ``Message`` is a
JSON string holding one SMS event. Authenticity: a ``TopicArn`` among the allowed ones, checked
first, and the SNS signature (:mod:`gateway.auth.sns_signature`), from a certificate in the
trusted directory or fetched from ``https://sns.<region>.amazonaws.com/<name>.pem`` by
:meth:`AwsSns.prepare`, off the event loop (:mod:`gateway.auth.sns_certificates`). SNS retries
resend the very same signed message, so there is no tight time window, only a generous
maximum age; the SNS ``MessageId`` is the event id statusd dedupes on.
``SubscriptionConfirmation`` is confirmed (a GET of its ``SubscribeURL``, which must be on the
same SNS hosts) only when configured; otherwise it is logged for you to confirm. See
docs/providers/aws-sns.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import CommaList
from gateway.auth import sns_certificates, sns_signature
from gateway.errors import Malformed, NotReady
from gateway.providers.base import (
    InboundRequest,
    InvalidItem,
    Parsed,
    Provider,
    SampleRequest,
    SampleUnavailable,
    json_body,
    json_object,
    raw_json,
)
from gateway.providers.credentials import Credentials, tolerance
from gateway.providers.fields import (
    decimal_text,
    epoch_millis,
    iso_time,
    lenient,
    recipient,
    set_time,
    text,
    whole_number,
)

log = logging.getLogger(__name__)

# eventType → canonical. `isFinal` is the authority on finality; this table is the status.
STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "TEXT_QUEUED": pb.DELIVERY_STATUS_QUEUED,
    "TEXT_PENDING": pb.DELIVERY_STATUS_SENT,  # being delivered
    # judgment: accepted by the recipient's carrier; AWS uses SUCCESSFUL and DELIVERED
    # interchangeably depending on the country, and a final SUCCESSFUL is all some get
    "TEXT_SUCCESSFUL": pb.DELIVERY_STATUS_DELIVERED,
    "TEXT_DELIVERED": pb.DELIVERY_STATUS_DELIVERED,
    # blocked by the device or carrier: REJECTED, permanent (docs/providers/README.md)
    "TEXT_BLOCKED": pb.DELIVERY_STATUS_REJECTED,
    "TEXT_CARRIER_BLOCKED": pb.DELIVERY_STATUS_REJECTED,
    "TEXT_SPAM": pb.DELIVERY_STATUS_REJECTED,
    "TEXT_PROTECT_BLOCKED": pb.DELIVERY_STATUS_REJECTED,  # your own SMS Protect settings
    "TEXT_INVALID": pb.DELIVERY_STATUS_REJECTED,
    "TEXT_INVALID_MESSAGE": pb.DELIVERY_STATUS_REJECTED,
    "TEXT_TTL_EXPIRED": pb.DELIVERY_STATUS_EXPIRED,
    "TEXT_CARRIER_UNREACHABLE": pb.DELIVERY_STATUS_UNDELIVERED,
    "TEXT_UNREACHABLE": pb.DELIVERY_STATUS_UNDELIVERED,
    "TEXT_UNKNOWN": pb.DELIVERY_STATUS_UNKNOWN,
}
#: Statuses that are progress, not failure: their messageStatus is no error.
PROGRESS = frozenset(
    {pb.DELIVERY_STATUS_QUEUED, pb.DELIVERY_STATUS_SENT, pb.DELIVERY_STATUS_DELIVERED}
)
#: Event types that AWS describes as temporary (the message may go through if sent again).
RETRYABLE = frozenset({"TEXT_CARRIER_UNREACHABLE", "TEXT_UNREACHABLE"})
#: AWS event types for ``dlrhub send-sample``.
SAMPLE_STATUSES = {
    "queued": "TEXT_QUEUED",
    "sent": "TEXT_PENDING",
    "delivered": "TEXT_DELIVERED",
    "undelivered": "TEXT_UNREACHABLE",
    "rejected": "TEXT_SPAM",
    "expired": "TEXT_TTL_EXPIRED",
    "unknown": "TEXT_UNKNOWN",
}
#: Oldest SNS Timestamp accepted by default: SNS's retries last at most an hour; a day leaves
#: room for clock trouble while still refusing old captures.
DEFAULT_MAX_AGE_SECONDS = 24 * 3600
SAMPLE_REGION_HOST = "sns.us-east-1.amazonaws.com"


class AwsSnsCredentials(Credentials):
    """What authenticates SNS messages: allowed topics and trusted certificates."""

    topic_arns: CommaList = Field((), description="Topic ARNs whose messages are accepted.")
    cert_dir: Path | None = Field(
        None, description="Trusted SNS signing certificates (PEM), looked up before any fetch."
    )
    confirm_subscriptions: bool = Field(
        False, description="Confirm SubscriptionConfirmation messages of allowed topics."
    )
    timestamp_tolerance_seconds: int = tolerance(
        DEFAULT_MAX_AGE_SECONDS, "Oldest SNS Timestamp accepted (0: any)."
    )
    sample_signing_key: SecretStr | None = Field(
        None, description="PEM RSA key for `dlrhub send-sample` (use the _FILE form); dev only."
    )

    @field_validator("topic_arns")
    @classmethod
    def _arns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            parts = arn.split(":")
            if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
                raise ValueError(f"{arn[:80]!r} is not an SNS topic ARN (arn:aws:sns:...)")
        return value

    def configured(self) -> bool:
        """Enabled by its allowed topics (no secret: the signature is public-key)."""
        return bool(self.topic_arns)


class AwsSns(Provider):
    name = "aws-sns"
    credentials: AwsSnsCredentials

    def __init__(
        self,
        account: str,
        credentials: AwsSnsCredentials,
        *,
        insecure: bool = False,
        clock: Callable[[], float] = time.time,
        fetch: sns_certificates.Fetcher | None = sns_certificates.fetch_https,
        confirm: sns_certificates.Fetcher | None = None,
    ) -> None:
        super().__init__(account, credentials, insecure=insecure, clock=clock)
        self.certificates = sns_certificates.CertificateCache(credentials.cert_dir, fetch)
        #: GETs a SubscribeURL (injected by tests; the same https client by default).
        self.confirm = confirm if confirm is not None else sns_certificates.fetch_https

    async def prepare(self, request: InboundRequest) -> None:
        """Once every check that needs no certificate passed, loads the signing certificate
        (fetched in a worker thread when the trusted directory lacks it), so that verify finds
        it; confirms a subscription when configured."""
        if self.insecure:
            return
        message = envelope(request)
        signed = self._check(message)
        try:
            await self.certificates.load(signed.certificate_url)
        except sns_signature.SnsError as exc:
            raise self.unauthenticated(exc.reason, label=exc.label) from None
        except sns_certificates.CertificateUnavailable as exc:
            raise NotReady(f"aws-sns: {exc}") from None
        if message.get("Type") == "SubscriptionConfirmation" and (
            self.credentials.confirm_subscriptions
        ):
            self.verify(request)
            await self._confirm(message)

    def verify(self, request: InboundRequest) -> str:
        message = envelope(request)
        signed = self._check(message)
        try:
            key = self.certificates.get(signed.certificate_url)
            sns_signature.verify(message, signed, key)
        except sns_signature.SnsError as exc:
            raise self.unauthenticated(exc.reason, label=exc.label) from None
        except sns_certificates.CertificateUnavailable as exc:
            raise NotReady(f"aws-sns: {exc}") from None
        return "sns_rsa"

    def _check(self, message: dict[str, Any]) -> sns_signature.Signed:
        """Every check that needs no certificate, the topic first."""
        if message.get("TopicArn") not in self.credentials.topic_arns:
            raise self.unauthenticated("TopicArn is not one of DLRHUB_AWS_SNS_TOPIC_ARNS")
        try:
            signed = sns_signature.check(message)
        except sns_signature.SnsError as exc:
            raise self.unauthenticated(exc.reason, label=exc.label) from None
        tolerance = self.credentials.timestamp_tolerance_seconds
        try:
            sent = iso_time(message.get("Timestamp"), "Timestamp")
        except InvalidItem as exc:
            raise self.unauthenticated(str(exc)) from None
        if tolerance and sent is not None and self.clock() - sent.timestamp() > tolerance:
            raise self.unauthenticated(f"Timestamp is older than {tolerance} s", label="stale")
        return signed

    def parse(self, request: InboundRequest) -> Parsed:
        message = envelope(request)
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            self._subscription(message)
            return Parsed()
        if kind == "UnsubscribeConfirmation":
            log.warning("aws-sns: unsubscribed from %s", message.get("TopicArn"))
            return Parsed()
        return Parsed.of(message, notification_report)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined Notification parsed again with today's code (quarantine replay)."""
        return notification_report(json_object(raw))

    def _subscription(self, message: dict[str, Any]) -> None:
        if not self.credentials.confirm_subscriptions:  # else prepare confirmed it
            log.warning(
                "aws-sns: subscription to %s awaits confirmation; open its SubscribeURL or set "
                "DLRHUB_AWS_SNS_CONFIRM_SUBSCRIPTIONS=true",
                message.get("TopicArn"),
                extra={"subscribe_url": str(message.get("SubscribeURL", ""))},
            )

    async def _confirm(self, message: dict[str, Any]) -> None:
        """GETs the SubscribeURL of a verified SubscriptionConfirmation, in a worker thread."""
        url = str(message.get("SubscribeURL", ""))
        if not sns_signature.is_sns_url(url):
            raise Malformed("SubscribeURL is not an https URL on sns.<region>.amazonaws.com")
        try:
            await sns_certificates.in_thread(self.confirm, url)
        except (OSError, sns_certificates.Refused) as exc:
            raise NotReady(f"aws-sns: cannot confirm the subscription: {exc}") from None
        log.info("aws-sns: confirmed the subscription to %s", message.get("TopicArn"))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        creds = self.credentials
        if creds.sample_signing_key is None or creds.cert_dir is None or not creds.topic_arns:
            raise SampleUnavailable(
                "aws-sns samples need DLRHUB_AWS_SNS_SAMPLE_SIGNING_KEY_FILE, a matching "
                "certificate in DLRHUB_AWS_SNS_CERT_DIR and DLRHUB_AWS_SNS_TOPIC_ARNS "
                "(development only; `dlrhub run` generates them)"
            )
        key = creds.sample_signing_key.get_secret_value().encode("utf-8")
        cert_name = sns_signature.certificate_matching(creds.cert_dir, key)
        if cert_name is None:
            raise SampleUnavailable("no certificate in DLRHUB_AWS_SNS_CERT_DIR matches the key")
        message = sample_message(
            message_id, SAMPLE_STATUSES.get(status, "TEXT_DELIVERED"), self.clock()
        )
        message.update(
            TopicArn=creds.topic_arns[0],
            SigningCertURL=f"https://{SAMPLE_REGION_HOST}/{cert_name}",
        )
        message["Signature"] = sns_signature.sign(message, key)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
        }
        return SampleRequest("POST", url, headers, json.dumps(message).encode("utf-8"))

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        """A self-signed certificate standing in for SNS's, written to
        ``<directory>/aws-sns/`` (trusted through the certificate directory), and its key,
        which ``dlrhub send-sample`` signs with: SNS signs with a key only AWS holds."""
        sns_dir = directory / "aws-sns"
        sns_dir.mkdir(parents=True, exist_ok=True)
        common_name = f"{SAMPLE_REGION_HOST} (dlrhub development)"
        certificate, key = sns_signature.signing_pair(common_name)
        (sns_dir / "SimpleNotificationService-dlrhub-dev.pem").write_bytes(certificate)
        key_path = sns_dir / "signing-key.pem"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return {
            cls.env("topic_arns"): "arn:aws:sns:us-east-1:000000000000:dlrhub-dev",
            cls.env("cert_dir"): str(sns_dir),
            cls.env("sample_signing_key") + "_FILE": str(key_path),
        }


def envelope(request: InboundRequest) -> dict[str, Any]:
    """The SNS message (JSON, sent as text/plain by default)."""
    if request.content_type not in ("text/plain", "application/json", ""):
        raise Malformed(f"aws-sns sends text/plain JSON, this request has {request.content_type}")
    message = json_body(request)
    if not isinstance(message, dict):
        raise Malformed("body is not an SNS message (a JSON object)")
    return message


def _event(message: dict[str, Any]) -> dict[str, Any]:
    """The SMS event inside a Notification's ``Message`` (a JSON string)."""
    try:
        event = json.loads(str(message.get("Message", "")))
    except (json.JSONDecodeError, RecursionError):
        raise InvalidItem("Message is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidItem("Message is not a JSON object")
    return event


def sample_message(message_id: str, event_type: str, now: float) -> dict[str, Any]:
    """An unsigned SNS Notification carrying one SMS event (TopicArn and URL to be set)."""
    millis = int(now * 1000)
    event = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": millis,
        "isFinal": event_type not in ("TEXT_QUEUED", "TEXT_PENDING"),
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": "+14255550156",
        "isoCountryCode": "US",
        "mcc": "310",
        "mnc": "800",
        "messageId": message_id,
        "messageRequestTimestamp": millis - 300,
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": event_type.removeprefix("TEXT_"),
        "messageStatusDescription": "sample",
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
    }
    stamp = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds")
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "Message": json.dumps(event, separators=(",", ":")),
        "Timestamp": stamp.replace("+00:00", "Z"),
        "SignatureVersion": "2",
        "UnsubscribeURL": f"https://{SAMPLE_REGION_HOST}/?Action=Unsubscribe",
    }


def notification_report(message: dict[str, Any]) -> pb.DeliveryReport:
    """A Notification's event as a report, deduplicated on the SNS MessageId. Without a
    readable ``eventTimestamp``, the Notification's signed ``Timestamp`` (when SNS published
    it, ISO 8601 UTC) is the event time, else the receive time."""
    report = normalize(_event(message))
    report.event_id = text(message.get("MessageId"), "MessageId", limit=128)
    if not report.HasField("event_time"):
        published = lenient("event_time", None, iso_time, message.get("Timestamp"), "Timestamp")
        set_time(report.event_time, published)
    return report


def normalize(event: dict[str, Any]) -> pb.DeliveryReport:
    """One SMS event → a report (provider-level fields and the event id are set later). Only
    messageId and eventType are required; an unreadable informational field is left out.
    The event time is ``eventTimestamp`` (Unix milliseconds)."""
    message = text(event.get("messageId"), "messageId", limit=128).strip()
    event_type = text(event.get("eventType"), "eventType", limit=64).strip()
    if not message or not event_type:
        raise InvalidItem("messageId or eventType is missing")
    status = STATUSES.get(event_type.upper(), pb.DELIVERY_STATUS_UNKNOWN)
    report = pb.DeliveryReport(
        message_id=message,
        status=status,
        provider_status=event_type,
        final=event.get("isFinal") is True,
        recipient=recipient(event.get("destinationPhoneNumber"), "destinationPhoneNumber"),
        sender=lenient("sender", "", text, event.get("originationPhoneNumber"), "sender", limit=64),
        segments=lenient("segments", 0, whole_number, event.get("totalMessageParts"), "parts"),
        raw=raw_json(event),
    )
    report.mcc, report.mnc = lenient("mcc_mnc", ("", ""), _network, event)
    price = event.get("totalMessagePrice")
    report.price.amount = lenient("price", "", decimal_text, price, "totalMessagePrice")
    context = event.get("context")
    if isinstance(context, dict) and context:
        report.client_ref = raw_json(context)[:4000]  # your send-time context, as JSON
    if status not in PROGRESS:
        lenient("error_text", None, _set_error, report, event)
        if event_type.upper() in RETRYABLE:
            report.error.permanent = False
        elif status == pb.DELIVERY_STATUS_REJECTED:
            report.error.permanent = True  # blocked, spam, invalid: sending again fails again
    when = lenient("event_time", None, epoch_millis, event.get("eventTimestamp"), "eventTimestamp")
    set_time(report.event_time, when)
    requested = event.get("messageRequestTimestamp")
    sent = lenient("sent_time", None, epoch_millis, requested, "messageRequestTimestamp")
    set_time(report.sent_time, sent)
    return report


def _network(event: dict[str, Any]) -> tuple[str, str]:
    return text(event.get("mcc"), "mcc", limit=8), text(event.get("mnc"), "mnc", limit=8)


def _set_error(report: pb.DeliveryReport, event: dict[str, Any]) -> None:
    name = text(event.get("messageStatus"), "messageStatus", limit=128)
    description = text(event.get("messageStatusDescription"), "messageStatusDescription")
    report.error.name, report.error.description = name, description

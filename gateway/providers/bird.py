"""Bird (the new platform, ``api.bird.com``) Channels API webhooks: ``sms.outbound`` events.

Authenticity: ``messagebird-signature`` is the base64 HMAC-SHA256, keyed with the webhook
subscription's signing key, of ``<timestamp>\\n<full URL>\\n<SHA-256 of the raw body as 32 raw
bytes>``, where the timestamp is ``messagebird-request-timestamp``; the timestamp must fall
inside a window (300 s by default). No official SDK implements this; the algorithm is Bird's
documented one. See docs/providers/bird.md.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from gateway.auth import signatures
from gateway.errors import Malformed
from gateway.providers.base import (
    InboundRequest,
    InvalidItem,
    Parsed,
    Provider,
    SampleRequest,
    json_body,
    json_object,
    raw_json,
)
from gateway.providers.credentials import Credentials, tolerance
from gateway.providers.fields import (
    first_time,
    iso_time,
    lenient,
    recipient,
    set_time,
    text,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "accepted": pb.DELIVERY_STATUS_ACCEPTED,
    "scheduled": pb.DELIVERY_STATUS_ACCEPTED,  # accepted, to be sent later
    "processing": pb.DELIVERY_STATUS_QUEUED,
    "sent": pb.DELIVERY_STATUS_SENT,  # handed to the SMS platform
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_DELIVERED,  # interaction on OTT channels: delivered, and read
    # failed before reaching the platform: a provider-side failure
    "sending_failed": pb.DELIVERY_STATUS_FAILED,
    "delivery_failed": pb.DELIVERY_STATUS_UNDELIVERED,
}
#: Bird statuses for ``dlrhub send-sample``.
SAMPLE_STATUSES = {
    "accepted": "accepted",
    "queued": "processing",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "delivery_failed",
    "failed": "sending_failed",
}
SIGNATURE = "messagebird-signature"
TIMESTAMP = "messagebird-request-timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


class BirdCredentials(Credentials):
    """Bird credentials."""

    signing_key: Secrets = Field(
        (), description="Signing keys of the webhook subscription; several during a rotation."
    )
    timestamp_tolerance_seconds: int = tolerance(DEFAULT_TOLERANCE_SECONDS)


class Bird(Provider):
    name = "bird"
    credentials: BirdCredentials

    def verify(self, request: InboundRequest) -> str:
        signature, stamp = self.required_header(request, SIGNATURE), request.header(TIMESTAMP)
        keys = signatures.secret_values(self.credentials.signing_key)
        message = signing_message(stamp or "", request.url, request.body)
        if not signatures.hmac_matches(keys, message, [signature.strip()]):
            raise self.unauthenticated(f"{SIGNATURE} does not match")
        tolerance = self.credentials.timestamp_tolerance_seconds
        self.check_timestamp(stamp, f"bird: {TIMESTAMP}", tolerance)
        return "bird_hmac"

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("payload"), dict):
            raise Malformed('body must be a JSON object with a "payload" object')
        return Parsed.of(body, normalize)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return normalize(json_object(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        bird_status = SAMPLE_STATUSES.get(status, "delivered")
        now = datetime.fromtimestamp(self.clock(), tz=UTC).isoformat(timespec="milliseconds")
        payload: dict[str, Any] = {
            "id": message_id,
            "channelId": str(uuid.UUID(int=1)),
            "receiver": {
                "contacts": [{"identifierKey": "phonenumber", "identifierValue": "+31612345678"}]
            },
            "reference": "sample",
            "parts": [{"platformReference": uuid.uuid4().hex}],
            "status": bird_status,
            "direction": "outgoing",
            "lastStatusAt": now.replace("+00:00", "Z"),
            "createdAt": now.replace("+00:00", "Z"),
            "updatedAt": now.replace("+00:00", "Z"),
        }
        if bird_status.endswith("_failed"):
            payload["reason"] = "details: unknown subscriber; reason: unknown_subscriber; code: 1"
            payload["details"] = "unknown_subscriber"
            payload["failure"] = {"code": 15005, "source": {"name": "sms-messagebird", "code": "1"}}
        body = raw_json({"service": "channels", "event": "sms.outbound", "payload": payload})
        raw = body.encode("utf-8")
        key = signatures.first_secret(self.credentials.signing_key)
        stamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE: sign(stamp, url, raw, key),
            TIMESTAMP: stamp,
        }
        return SampleRequest("POST", url, headers, raw)

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("signing_key"): secrets.token_urlsafe(24)}


def normalize(body: dict[str, Any]) -> pb.DeliveryReport:
    """One ``<channel>.outbound`` event → a report (provider-level fields are stamped later).
    Only payload.id and payload.status are required; an unreadable informational field is
    left out. The event time is ``lastStatusAt``, else ``updatedAt`` (ISO 8601), else the
    receive time."""
    event = text(body.get("event"), "event", limit=64)
    if event and not event.endswith(".outbound"):
        raise InvalidItem(f"event {event!r} is not an outbound message status")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise InvalidItem("payload is not an object")
    message = text(payload.get("id"), "payload.id", limit=128).strip()
    raw_status = text(payload.get("status"), "payload.status", limit=64).strip()
    if not message or not raw_status:
        raise InvalidItem("payload.id or payload.status is missing")
    parts = payload.get("parts")
    receiver = lenient("recipient", "", _identifier, payload.get("receiver"), "contacts")
    report = pb.DeliveryReport(
        message_id=message,
        status=STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN),
        provider_status=raw_status,
        provider_status_group=event,
        recipient=recipient(receiver, "receiver.contacts.identifierValue"),
        sender=lenient("sender", "", _identifier, payload.get("sender"), "connector"),
        client_ref=lenient("client_ref", "", text, payload.get("reference"), "payload.reference"),
        segments=len(parts) if isinstance(parts, list) else 0,
        raw=raw_json(body),
    )
    lenient("error_text", None, _set_failure, report, payload)
    when = first_time(
        lenient("event_time", None, iso_time, payload.get("lastStatusAt"), "lastStatusAt"),
        lenient("event_time", None, iso_time, payload.get("updatedAt"), "updatedAt"),
    )
    set_time(report.event_time, when)
    return report


def _set_failure(report: pb.DeliveryReport, payload: dict[str, Any]) -> None:
    """The failure's code, details, reason and source, set only when all of it reads."""
    failure = payload.get("failure")
    reason = text(payload.get("reason"), "payload.reason")
    if not isinstance(failure, dict) and not reason:
        return
    failure = failure if isinstance(failure, dict) else {}
    source = failure.get("source")
    source = source if isinstance(source, dict) else {}
    code = text(failure.get("code"), "failure.code", limit=32)
    name = text(payload.get("details"), "payload.details", limit=256)
    group = text(source.get("name"), "failure.source.name", limit=64)
    report.error.code, report.error.name = code, name
    report.error.description, report.error.group = reason, group


def _identifier(party: object, key: str) -> str:
    """``identifierValue`` of a sender's connector or a receiver's first contact."""
    if not isinstance(party, dict):
        return ""
    value = party.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict):
        return ""
    return text(value.get("identifierValue"), f"{key}.identifierValue", limit=64)


def signing_message(timestamp: str, url: str, body: bytes) -> bytes:
    """``<timestamp>\\n<url>\\n<raw SHA-256 of body>``: what Bird signs."""
    return f"{timestamp}\n{url}\n".encode() + hashlib.sha256(body).digest()


def sign(timestamp: str, url: str, body: bytes, key: str) -> str:
    """A ``messagebird-signature`` value (for tests and ``dlrhub send-sample``)."""
    return signatures.hmac_b64(key.encode("utf-8"), signing_message(timestamp, url, body))

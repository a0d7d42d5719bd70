"""Vonage Messages API message-status webhooks: one JSON POST per status change.

Authenticity: ``Authorization: Bearer <JWT>``, HS256 keyed with the account's signature
secret (the dashboard's signature method does not apply here). The token must verify, its
``payload_hash`` claim must equal the hex SHA-256 of the raw body, and its ``iat`` must be
inside a window wide enough for Vonage's 24-hour retries. Vonage documents that an internal
error can, rarely, make it send a callback **unsigned**; such a callback is answered 503 (not
401) so Vonage retries it, signed. See docs/providers/vonage-messages.md.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from gateway.auth import jwt, signatures
from gateway.errors import Malformed, NotReady
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
    iso_time,
    lenient,
    network_code,
    recipient,
    required,
    set_price,
    set_time,
    text,
    whole_number,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "submitted": pb.DELIVERY_STATUS_SENT,  # passed to the messaging provider
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_DELIVERED,  # OTT read receipt: delivered, and read
    # rejected covers bad parameters, a provider's refusal, and TTL expiry (refined below)
    "rejected": pb.DELIVERY_STATUS_REJECTED,
    # judgment: the Messages API could not reach the provider: a provider-side failure
    "undeliverable": pb.DELIVERY_STATUS_FAILED,
}
#: Words in a rejection's error that mean its time to live ran out before delivery.
EXPIRY_WORDS = ("expired", "expiry", "ttl", "time to live")
#: Vonage statuses for ``dlrhub send-sample``.
SAMPLE_STATUSES = {
    "sent": "submitted",
    "delivered": "delivered",
    "rejected": "rejected",
    "failed": "undeliverable",
}
#: A token's ``iat`` may be this old by default: Vonage retries for 24 hours, and whether a
#: retry carries a fresh token is not documented.
DEFAULT_TOLERANCE_SECONDS = 24 * 3600


class VonageMessagesCredentials(Credentials):
    """Vonage Messages API credentials."""

    signature_secret: Secrets = Field(
        (), description="Signature secrets that sign the JWT; several during a rotation."
    )
    timestamp_tolerance_seconds: int = tolerance(
        DEFAULT_TOLERANCE_SECONDS, "Oldest token iat accepted (0: any)."
    )


class VonageMessages(Provider):
    name = "vonage-messages"
    credentials: VonageMessagesCredentials

    def verify(self, request: InboundRequest) -> str:
        scheme, _, token = (request.header("authorization") or "").strip().partition(" ")
        if not token or scheme.lower() != "bearer":
            # Vonage documents rare unsigned callbacks from an internal error: ask for a retry.
            raise NotReady("vonage-messages: unsigned callback; Vonage retries it signed")
        creds = self.credentials
        tolerance = creds.timestamp_tolerance_seconds
        try:
            claims = jwt.decode(
                token.strip(),
                signatures.secret_values(creds.signature_secret),
                now=self.clock(),
                algorithms=("HS256",),
                max_age=float(tolerance) if tolerance else None,
            )
        except jwt.TokenError as exc:
            raise self.unauthenticated(exc.reason, label=exc.label) from None
        payload_hash = claims.get("payload_hash")
        if not isinstance(payload_hash, str):
            raise self.unauthenticated("token has no payload_hash claim")
        if not signatures.equal(signatures.sha256_hex(request.body), payload_hash.lower()):
            raise self.unauthenticated("payload_hash does not match the body")
        return "vonage_jwt"

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        if not isinstance(body, dict) or not body.get("message_uuid"):
            raise Malformed("body must be a JSON object with a message_uuid")
        return Parsed.of(body, normalize)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return normalize(json_object(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        vonage_status = SAMPLE_STATUSES.get(status, "delivered")
        item: dict[str, Any] = {
            "message_uuid": message_id,
            "to": "447700900000",
            "from": "447700900001",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": vonage_status,
            "channel": "sms",
            "client_ref": "sample",
            "usage": {"currency": "EUR", "price": "0.0333"},
            "destination": {"network_code": "23410"},
        }
        if vonage_status in ("rejected", "undeliverable"):
            item["error"] = {
                "type": "https://developer.vonage.com/api-errors/messages#1320",
                "title": "1320",
                "detail": "Message failed because the number is blocked",
            }
        body = raw_json(item).encode("utf-8")
        secret = signatures.first_secret(self.credentials.signature_secret)
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + sign(body, secret, now=self.clock()),
        }
        return SampleRequest("POST", url, headers, body)

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("signature_secret"): secrets.token_urlsafe(24)}


def normalize(item: dict[str, Any]) -> pb.DeliveryReport:
    """One status callback → a report (provider-level fields are stamped later). Only
    message_uuid and status are required; an unreadable informational field is left out.
    The event time is ``timestamp`` (ISO 8601 UTC), else the receive time."""
    uuid_ = required(item.get("message_uuid"), "message_uuid", limit=128)
    raw_status = required(item.get("status"), "status", limit=64)
    report = pb.DeliveryReport(
        message_id=uuid_,
        provider_status=raw_status,
        provider_status_group=text(item.get("channel"), "channel", limit=32),
        recipient=recipient(item.get("to"), "to"),
        sender=lenient("sender", "", text, item.get("from"), "from", limit=64),
        client_ref=lenient("client_ref", "", text, item.get("client_ref"), "client_ref"),
        raw=raw_json(item),
    )
    report.status = STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN)
    lenient("error_text", None, _set_error, report, item.get("error"))
    lenient("price", None, set_price, report, item.get("usage"), "usage", "price")
    destination = item.get("destination")
    if isinstance(destination, dict):
        network = destination.get("network_code")
        mcc_mnc = lenient("mcc_mnc", ("", ""), network_code, network, "destination.network_code")
        report.mcc, report.mnc = mcc_mnc
    sms = item.get("sms")
    if isinstance(sms, dict):
        count = sms.get("count_total")
        report.segments = lenient("segments", 0, whole_number, count, "sms.count_total")
    when = lenient("event_time", None, iso_time, item.get("timestamp"), "timestamp")
    set_time(report.event_time, when)
    return report


def _set_error(report: pb.DeliveryReport, error: object) -> None:
    """The error object (title, detail, type); a rejection for a TTL becomes an expiry."""
    if error is None:
        return
    if not isinstance(error, dict):
        raise InvalidItem("error is not an object")
    title = text(error.get("title"), "error.title", limit=128)
    detail = text(error.get("detail"), "error.detail")
    kind = text(error.get("type"), "error.type", limit=256)
    report.error.code, report.error.description, report.error.group = title, detail, kind
    words = f"{title} {detail}".lower()
    if report.status == pb.DELIVERY_STATUS_REJECTED and any(word in words for word in EXPIRY_WORDS):
        report.status = pb.DELIVERY_STATUS_EXPIRED  # judgment: a TTL rejection is an expiry


def sign(body: bytes, secret: str, *, now: float, api_key: str = "abcd1234") -> str:
    """A Bearer token as Vonage makes it (for tests and ``dlrhub send-sample``)."""
    claims = {
        "iat": int(now),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": signatures.sha256_hex(body),
        "api_key": api_key,
        "application_id": "00000000-0000-4000-8000-000000000000",
    }
    return jwt.encode(claims, secret.encode("utf-8"))

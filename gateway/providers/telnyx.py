"""Telnyx Messaging v2 webhooks: ``message.sent`` and ``message.finalized`` JSON events.

Authenticity: Ed25519. ``telnyx-signature-ed25519`` is the base64 signature of
``<telnyx-timestamp>|<raw body>``, verified with the account's public key (nothing secret is
held here; list several keys while one is rotated). The timestamp must be within 300 s of now
either way, as in Telnyx's SDK. ``data.id`` is the event id statusd dedupes on.

A message may have several recipients (group MMS), each with its own status. With one
recipient (every SMS) the message id is ``payload.id``; with several, each recipient is its
own message ``<payload.id>:<phone number>`` whose parent is ``payload.id``, so the group's
status is aggregated at read time. See docs/providers/telnyx.md.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, SecretStr, field_validator

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from gateway.errors import Malformed
from gateway.providers.base import (
    InboundRequest,
    InvalidItem,
    Parsed,
    Provider,
    SampleRequest,
    SampleUnavailable,
    json_body,
    json_object,
    only_report,
    raw_json,
)
from gateway.providers.credentials import Credentials, tolerance
from gateway.providers.fields import (
    ErrorCodes,
    apply_error_code,
    first_time,
    identity_number,
    iso_time,
    lenient,
    recipient,
    set_price,
    set_time,
    text,
    whole_number,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "queued": pb.DELIVERY_STATUS_QUEUED,
    # judgment: Telnyx is handing it to the carrier, which has not acknowledged it yet
    "sending": pb.DELIVERY_STATUS_QUEUED,
    "sent": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_DELIVERED,  # RCS/WhatsApp read receipt: delivered, and read
    "delivery_failed": pb.DELIVERY_STATUS_UNDELIVERED,
    # judgment: Telnyx could not send it (also when valid_until passed while it was queued,
    # which could be called EXPIRED; the raw status is kept)
    "sending_failed": pb.DELIVERY_STATUS_FAILED,
    "expired": pb.DELIVERY_STATUS_EXPIRED,
    # judgment: final, but the carrier never confirmed: a final word that says nothing
    "delivery_unconfirmed": pb.DELIVERY_STATUS_UNKNOWN,
}
#: Delivery error codes (``errors[0].code``, the 40xxx family of Telnyx's messaging error-code
#: reference): (description, permanent or None when Telnyx does not say, the canonical status a
#: failure with this code gets, or None to keep the mapped one).
ERROR_CODES: ErrorCodes = {
    "40001": ("Not routable (landline or non-routable number)", True, pb.DELIVERY_STATUS_REJECTED),
    "40002": ("Blocked as spam (temporary)", False, pb.DELIVERY_STATUS_REJECTED),
    "40003": ("Blocked as spam (permanent)", True, pb.DELIVERY_STATUS_REJECTED),
    "40004": ("Rejected by destination (unknown reason)", False, None),
    "40005": ("Message expired during transmission", None, pb.DELIVERY_STATUS_EXPIRED),
    "40006": ("Recipient server unavailable", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "40008": ("Undeliverable", None, None),
    "40009": ("Invalid message body", True, pb.DELIVERY_STATUS_REJECTED),
    "40011": ("Rate limit exceeded upstream", False, pb.DELIVERY_STATUS_FAILED),
    "40012": ("Invalid destination number", True, pb.DELIVERY_STATUS_REJECTED),
    "40013": ("Invalid source number", True, pb.DELIVERY_STATUS_REJECTED),
    "40014": ("Expired in queue", None, pb.DELIVERY_STATUS_EXPIRED),
    "40015": ("Internal spam filter", True, pb.DELIVERY_STATUS_REJECTED),
    # Telnyx's error reference (api/errors/40300): the recipient replied STOP; an opt-out
    "40300": ("Blocked due to STOP message (opt-out)", True, pb.DELIVERY_STATUS_REJECTED),
}
#: Statuses that say nothing went wrong: a message-level ``errors[]`` is not theirs.
NOT_FAILED = frozenset(
    {pb.DELIVERY_STATUS_QUEUED, pb.DELIVERY_STATUS_SENT, pb.DELIVERY_STATUS_DELIVERED}
)
#: Events that report an outbound message's status; ``message.finalized`` is terminal.
EVENTS = frozenset({"message.sent", "message.finalized", "message.read"})
FINAL_EVENT = "message.finalized"
#: Most recipients one message may have.
MAX_RECIPIENTS = 100
SIGNATURE = "telnyx-signature-ed25519"
TIMESTAMP = "telnyx-timestamp"
DEFAULT_TOLERANCE_SECONDS = 300
SAMPLE_STATUSES = {
    "queued": ("message.sent", "queued"),
    "sent": ("message.sent", "sent"),
    "delivered": ("message.finalized", "delivered"),
    "undelivered": ("message.finalized", "delivery_failed"),
    "failed": ("message.finalized", "sending_failed"),
    "expired": ("message.finalized", "expired"),
    "unknown": ("message.finalized", "delivery_unconfirmed"),
}


def _key_bytes(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what} is not 32 bytes (an Ed25519 key)")
    return raw


class TelnyxCredentials(Credentials):
    """Telnyx credentials: public keys (not secret, but kept out of logs all the same)."""

    public_key: Secrets = Field(
        (), description="Base64 Ed25519 public keys from the Telnyx portal; several to rotate."
    )
    timestamp_tolerance_seconds: int = tolerance(
        DEFAULT_TOLERANCE_SECONDS, "How far telnyx-timestamp may be from now.", ge=1
    )
    sample_signing_key: Secrets = Field(
        (), description="Base64 Ed25519 private key (seed) for `dlrhub send-sample`; dev only."
    )

    @field_validator("public_key", "sample_signing_key")
    @classmethod
    def _ed25519_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for key in value:
            _key_bytes(key.get_secret_value(), "each key")
        return value

    def configured(self) -> bool:
        """Only public keys authenticate; a sample signing key alone enables nothing."""
        return bool(self.public_key)


class Telnyx(Provider):
    name = "telnyx"
    credentials: TelnyxCredentials

    def verify(self, request: InboundRequest) -> str:
        signature, stamp = self.required_header(request, SIGNATURE), request.header(TIMESTAMP)
        try:
            raw_signature = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise self.unauthenticated(f"{SIGNATURE} is not base64") from None
        message = f"{(stamp or '').strip()}|".encode() + request.body
        keys = [
            _key_bytes(key.get_secret_value(), "public key") for key in self.credentials.public_key
        ]
        if not any(_verifies(key, raw_signature, message) for key in keys):
            raise self.unauthenticated(f"{SIGNATURE} does not verify with any public key")
        tolerance = self.credentials.timestamp_tolerance_seconds
        self.check_timestamp(stamp, TIMESTAMP, tolerance, max_future=tolerance)
        return "ed25519"

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        try:
            data = event_data(body)
        except InvalidItem:
            raise Malformed('body must be a JSON object with "data" and "data.payload"') from None
        recipients = data["payload"].get("to")
        self.check_items(len(recipients) if isinstance(recipients, list) else 1)
        return Parsed.of(body, reports_of)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return only_report(reports_of(json_object(raw)))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        if not self.credentials.sample_signing_key:
            raise SampleUnavailable(
                "telnyx signs with its private key; set DLRHUB_TELNYX_SAMPLE_SIGNING_KEY "
                "(development only) to sign samples"
            )
        event, telnyx_status = SAMPLE_STATUSES.get(status, SAMPLE_STATUSES["delivered"])
        now = datetime.fromtimestamp(self.clock(), tz=UTC).isoformat(timespec="milliseconds")
        envelope = {
            "data": {
                "event_type": event,
                "id": str(uuid.uuid4()),
                "occurred_at": now,
                "record_type": "event",
                "payload": {
                    "id": message_id,
                    "record_type": "message",
                    "direction": "outbound",
                    "type": "SMS",
                    "from": {"phone_number": "+18445550001", "carrier": "Telnyx"},
                    "to": [{"phone_number": "+18665550001", "status": telnyx_status}],
                    "parts": 1,
                    "cost": {"amount": "0.0051", "currency": "USD"},
                    "errors": [],
                    "sent_at": now,
                },
            },
            "meta": {"attempt": 1, "delivered_to": url},
        }
        body = raw_json(envelope).encode("utf-8")
        seed = _key_bytes(self.credentials.sample_signing_key[0].get_secret_value(), "key")
        stamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE: sign(body, stamp, seed),
            TIMESTAMP: stamp,
        }
        return SampleRequest("POST", url, headers, body)

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        """A development key pair: Telnyx signs with a key only Telnyx holds."""
        seed = secrets.token_bytes(32)
        return {
            cls.env("public_key"): public_key_of(seed),
            cls.env("sample_signing_key"): base64.b64encode(seed).decode("ascii"),
        }


def _verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def event_data(body: object) -> dict[str, Any]:
    """The ``data`` of a webhook body, which must hold a ``payload`` object."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise InvalidItem('not an event with "data" and "data.payload"')
    return data


def reports_of(body: object) -> list[pb.DeliveryReport]:
    """A webhook body → a report per recipient."""
    return normalize(event_data(body))


def normalize(data: dict[str, Any]) -> list[pb.DeliveryReport]:
    """One event → a report per recipient (provider-level fields are stamped later)."""
    event_type = text(data.get("event_type"), "event_type", limit=64)
    if event_type not in EVENTS:
        raise InvalidItem(f"event_type {event_type[:64]!r} is not an outbound message status")
    payload: dict[str, Any] = data["payload"]
    message = text(payload.get("id"), "payload.id", limit=96).strip()
    recipients = payload.get("to")
    if not message or not isinstance(recipients, list) or not recipients:
        raise InvalidItem("payload.id or payload.to is missing")
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidItem(f"payload.to has more than {MAX_RECIPIENTS} recipients")
    event_id = text(data.get("id"), "data.id", limit=128).strip()
    several = len(recipients) > 1
    reports = []
    for index, entry in enumerate(recipients, start=1):
        if not isinstance(entry, dict):
            raise InvalidItem("a payload.to entry is not an object")
        phone = text(entry.get("phone_number"), "to[].phone_number", limit=32).strip()
        raw_status = text(entry.get("status"), "to[].status", limit=64).strip()
        if not raw_status or (several and not phone):
            raise InvalidItem("a payload.to entry lacks a status or phone_number")
        report = _report(payload, event_type, raw_status, phone)
        key = identity_number(phone)  # part of the id of a group message's recipient
        report.message_id = f"{message}:{key}" if several else message
        report.event_id = f"{event_id}:{key}" if several and event_id else event_id
        if several:
            report.parent_message_id = message
            report.part_index, report.part_count = index, len(recipients)
        set_time(report.event_time, _event_time(data, payload))
        reports.append(report)
    return reports


def _event_time(data: dict[str, Any], payload: dict[str, Any]) -> datetime | None:
    """``occurred_at`` (ISO 8601 with an offset), else ``payload.completed_at`` for a final
    event, else the receive time."""
    final = data.get("event_type") == FINAL_EVENT
    completed = payload.get("completed_at") if final else None
    return first_time(
        lenient("event_time", None, iso_time, data.get("occurred_at"), "occurred_at"),
        lenient("event_time", None, iso_time, completed, "completed_at"),
    )


def _report(
    payload: dict[str, Any], event_type: str, raw_status: str, phone: str
) -> pb.DeliveryReport:
    """What every recipient's report of one event shares; unreadable information left out."""
    report = pb.DeliveryReport(
        status=STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN),
        provider_status=raw_status,
        provider_status_group=event_type,
        final=event_type == FINAL_EVENT,
        recipient=recipient(phone, "to[].phone_number"),
        sender=lenient("sender", "", _sender, payload.get("from")),
        segments=lenient("segments", 0, whole_number, payload.get("parts"), "parts"),
        raw=raw_json(payload),
    )
    lenient("price", None, set_price, report, payload.get("cost"), "cost", "amount")
    if report.status not in NOT_FAILED:  # errors[] is the message's; it names no recipient
        lenient("error_text", None, _set_error, report, payload.get("errors"))
    sent = lenient("sent_time", None, iso_time, payload.get("sent_at"), "sent_at")
    set_time(report.sent_time, sent)
    return report


def _sender(sender: object) -> str:
    if not isinstance(sender, dict):
        return ""
    return text(sender.get("phone_number"), "from.phone_number", limit=64)


def _set_error(report: pb.DeliveryReport, errors: object) -> None:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = text(first.get("code"), "errors[0].code", limit=32).strip()
        name = text(first.get("title"), "errors[0].title", limit=256)
        description = text(first.get("detail"), "errors[0].detail")
        apply_error_code(report, code, ERROR_CODES)
        report.error.name = name
        report.error.description = description or report.error.description


def public_key_of(seed: bytes) -> str:
    """The base64 public key of a 32-byte private key seed."""
    raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return base64.b64encode(raw).decode("ascii")


def sign(body: bytes, timestamp: str, seed: bytes) -> str:
    """A ``telnyx-signature-ed25519`` value (for tests and ``dlrhub send-sample``)."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return base64.b64encode(key.sign(f"{timestamp}|".encode() + body)).decode("ascii")

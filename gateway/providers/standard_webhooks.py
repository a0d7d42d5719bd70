"""Standard Webhooks: a generic provider for any sender that signs the Standard Webhooks way.

Authenticity: ``webhook-signature`` holds space-separated ``v1,<base64>`` entries, each the
HMAC-SHA256, keyed with the base64 key of a ``whsec_...`` secret, of
``<webhook-id>.<webhook-timestamp>.<raw body>``; one matching entry suffices (rotation), other
versions are ignored; the timestamp must be within 300 s of now either way. ``webhook-id`` is
the event id statusd dedupes on. The ``svix-*`` header names are accepted too (same scheme).

The body is one JSON object. By default its fields are dlrhub's own (``message_id``,
``status`` as a canonical name in lower case, ``event_time`` in RFC 3339, ``recipient``,
``sender``, ``error_code``, ``error_description``, ``client_ref``). Any other sender's shape is
mapped with ``DLRHUB_STANDARD_WEBHOOKS_FIELD_MAP`` (canonical field → dotted path, e.g.
``{"message_id": "data.id", "status": "data.state"}``) and
``DLRHUB_STANDARD_WEBHOOKS_STATUS_MAP`` (the sender's status → canonical name). See
docs/providers/standard-webhooks.md.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from dlrhub_common.status_names import REPORTED_BY_NAME
from gateway.auth import signatures
from gateway.errors import Malformed
from gateway.providers.base import (
    InboundRequest,
    Parsed,
    Provider,
    SampleRequest,
    json_body,
    json_object,
    raw_json,
)
from gateway.providers.credentials import Credentials, tolerance
from gateway.providers.fields import (
    decimal_text,
    iso_time,
    lenient,
    message_id,
    recipient,
    required,
    set_time,
    text,
    whole_number,
)

#: Canonical fields a sender's payload can be mapped to (the default path is the name).
FIELDS = (
    "message_id",
    "status",
    "event_time",
    "recipient",
    "sender",
    "error_code",
    "error_name",
    "error_description",
    "client_ref",
    "batch_id",
    "parent_message_id",
    "part_index",
    "part_count",
    "segments",
    "price_amount",
    "price_currency",
    "final",
)
HEADERS = {
    "id": ("webhook-id", "svix-id"),
    "timestamp": ("webhook-timestamp", "svix-timestamp"),
    "signature": ("webhook-signature", "svix-signature"),
}
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
DEFAULT_TOLERANCE_SECONDS = 300
MAX_PATH_DEPTH = 8


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (padding optional, as in the reference)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("a secret is empty")
    return key


class StandardWebhooksCredentials(Credentials):
    """Standard Webhooks secrets and the mapping of the sender's payload."""

    secret: Secrets = Field((), description="`whsec_...` secrets; several during a rotation.")
    timestamp_tolerance_seconds: int = tolerance(
        DEFAULT_TOLERANCE_SECONDS, "How far webhook-timestamp may be from now.", ge=1
    )
    field_map: dict[str, str] = Field(
        default_factory=dict, description="Canonical field → dotted path in the sender's JSON."
    )
    status_map: dict[str, str] = Field(
        default_factory=dict, description="The sender's status → canonical status name."
    )

    @field_validator("secret")
    @classmethod
    def _secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in value:
            secret_key(secret.get_secret_value())
        return value

    @field_validator("field_map")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        for name, path in value.items():
            if not path or len(path.split(".")) > MAX_PATH_DEPTH or "" in path.split("."):
                raise ValueError(f"{name}: {path!r} is not a dotted path")
        return value

    @field_validator("status_map")
    @classmethod
    def _statuses(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(
            target for target in value.values() if target.lower() not in REPORTED_BY_NAME
        )
        if wrong:
            raise ValueError(f"not canonical status names: {', '.join(wrong)}")
        return {key.lower(): target.lower() for key, target in value.items()}


class StandardWebhooks(Provider):
    name = "standard-webhooks"
    credentials: StandardWebhooksCredentials

    def verify(self, request: InboundRequest) -> str:
        webhook_id, stamp, entries = (_header(request, kind) for kind in HEADERS)
        if not entries:
            raise self.unauthenticated("no webhook-signature header", label="missing")
        if not webhook_id:
            raise self.unauthenticated("no webhook-id header", label="missing")
        keys = [secret_key(secret.get_secret_value()) for secret in self.credentials.secret]
        message = f"{webhook_id}.{stamp}.".encode() + request.body
        given = [
            entry.partition(",")[2] for entry in entries.split() if entry.partition(",")[0] == "v1"
        ]
        if not signatures.hmac_matches(keys, message, given):
            raise self.unauthenticated("no v1 entry of webhook-signature matches")
        tolerance = self.credentials.timestamp_tolerance_seconds
        self.check_timestamp(stamp, "webhook-timestamp", tolerance, max_future=tolerance)
        return "standard_webhooks"

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        if not isinstance(body, dict):
            raise Malformed("body must be a JSON object")
        parsed = Parsed.of(body, lambda item: normalize(item, self.credentials))
        for report in parsed.reports:
            report.event_id = text(_header(request, "id"), "webhook-id", limit=256)
        return parsed

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return normalize(json_object(raw), self.credentials)

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        creds = self.credentials
        sender_status = next(
            (theirs for theirs, ours in creds.status_map.items() if ours == status), status
        )
        values: dict[str, Any] = {
            "message_id": message_id,
            "status": sender_status,
            "event_time": datetime.fromtimestamp(self.clock(), tz=UTC).isoformat(),
            "recipient": "+447700900123",
            "sender": "dlrhub",
            "client_ref": "sample",
        }
        if status not in ("accepted", "queued", "sent", "delivered"):
            values.update(error_code="sample-error", error_description="a sample failure")
        body: dict[str, Any] = {}
        for name, value in values.items():
            _put(body, creds.field_map.get(name, name), value)
        raw = raw_json(body).encode("utf-8")
        secret = signatures.first_secret(creds.secret, SECRET_PREFIX + "AA==")
        webhook_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": stamp,
            "webhook-signature": sign(webhook_id, stamp, raw, secret),
        }
        return SampleRequest("POST", url, headers, raw)

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        key = base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        return {cls.env("secret"): SECRET_PREFIX + key}


def _header(request: InboundRequest, kind: str) -> str:
    for name in HEADERS[kind]:
        value = request.header(name)
        if value:
            return value.strip()
    return ""


def _get(body: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (list items by index); None when absent."""
    value: Any = body
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    """Sets the value at a dotted path, making objects on the way (samples only)."""
    *parents, last = path.split(".")
    node = body
    for step in parents:
        node = node.setdefault(step, {})
    node[last] = value


def normalize(body: dict[str, Any], creds: StandardWebhooksCredentials) -> pb.DeliveryReport:
    """The sender's object → a report, through the field and status maps. Only the message
    id and the status are required; an unreadable informational field is left out. The event
    time is the mapped ``event_time`` (ISO 8601 with an offset), else the receive time."""

    def field(name: str) -> Any:
        return _get(body, creds.field_map.get(name, name))

    raw_status = required(field("status"), "status", limit=64)
    target = creds.status_map.get(raw_status.lower(), raw_status)
    # An unmapped status (or no_report, which only statusd sets): kept raw, UNKNOWN.
    status = REPORTED_BY_NAME.get(
        target.strip().lower().removeprefix("delivery_status_"), pb.DELIVERY_STATUS_UNKNOWN
    )
    final = field("final")
    report = pb.DeliveryReport(
        message_id=message_id(field("message_id"), "message_id"),
        status=status,
        provider_status=raw_status,
        recipient=recipient(field("recipient"), "recipient"),
        sender=lenient("sender", "", text, field("sender"), "sender", limit=64),
        client_ref=lenient("client_ref", "", text, field("client_ref"), "client_ref"),
        batch_id=lenient("batch_id", "", text, field("batch_id"), "batch_id", limit=256),
        parent_message_id=text(field("parent_message_id"), "parent_message_id", limit=128),
        segments=lenient("segments", 0, whole_number, field("segments"), "segments"),
        final=final is True,
        raw=raw_json(body),
    )
    report.part_index, report.part_count = lenient("parts", (0, 0), _parts, field)
    lenient("error_text", None, _set_error, report, field)
    amount, currency = field("price_amount"), field("price_currency")
    report.price.amount = lenient("price", "", decimal_text, amount, "price_amount")
    report.price.currency = lenient("price", "", text, currency, "price_currency", limit=8)
    when = lenient("event_time", None, iso_time, field("event_time"), "event_time")
    set_time(report.event_time, when)
    return report


def _parts(field: Callable[[str], Any]) -> tuple[int, int]:
    index = whole_number(field("part_index"), "part_index")
    return index, whole_number(field("part_count"), "part_count")


def _set_error(report: pb.DeliveryReport, field: Callable[[str], Any]) -> None:
    code = text(field("error_code"), "error_code", limit=64)
    description = text(field("error_description"), "error_description")
    name = text(field("error_name"), "error_name", limit=128)
    if code or description or name:
        report.error.code, report.error.name, report.error.description = code, name, description


def sign(webhook_id: str, timestamp: str, body: bytes, secret: str) -> str:
    """A ``webhook-signature`` value (``v1,<base64>``) for tests and ``dlrhub send-sample``."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + signatures.hmac_b64(secret_key(secret), message)

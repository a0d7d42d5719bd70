"""Legacy MessageBird SMS API status reports: one GET with query parameters per status.

Authenticity, current scheme: ``MessageBird-Signature-JWT``, a JWT keyed with the account's
signing key (not the API key), algorithm HS256, HS384 or HS512 (nothing else, ``none``
least of all), ``iss`` = ``MessageBird``, ``nbf`` and ``exp`` checked with 1 s of leeway,
``url_hash`` = hex SHA-256 of the full URL exactly as called (query string as received), and
``payload_hash`` = hex SHA-256 of the body, present exactly when there is a body.
Deprecated scheme, accepted when no JWT header is present: ``MessageBird-Signature`` = base64
HMAC-SHA256 of ``<MessageBird-Request-Timestamp>\\n<query sorted and urlencoded>\\n<raw
SHA-256 of the body>``, with the timestamp inside a window. See docs/providers/messagebird.md.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import Field

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from gateway.auth import jwt, signatures
from gateway.errors import Malformed
from gateway.providers.base import (
    InboundRequest,
    Parsed,
    Provider,
    SampleRequest,
    json_object,
    raw_json,
)
from gateway.providers.credentials import Credentials, tolerance
from gateway.providers.fields import (
    ErrorCodes,
    apply_error_code,
    decimal_text,
    iso_time,
    lenient,
    network_code,
    recipient,
    required,
    set_time,
    text,
    whole_number,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "scheduled": pb.DELIVERY_STATUS_ACCEPTED,
    "sent": pb.DELIVERY_STATUS_SENT,
    # judgment: waiting at the SMSC (handset off or out of coverage): handed off, not delivered
    "buffered": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "expired": pb.DELIVERY_STATUS_EXPIRED,
    "delivery_failed": pb.DELIVERY_STATUS_UNDELIVERED,
}
#: ``statusErrorCode`` values (GSM MAP codes, and MessageBird's own above 100): (description,
#: permanent or None when unknown, the canonical status a failure with this code gets, or None).
ERROR_CODES: ErrorCodes = {
    "1": ("Unknown subscriber", True, pb.DELIVERY_STATUS_REJECTED),
    "5": ("Unidentified subscriber", True, pb.DELIVERY_STATUS_REJECTED),
    "6": ("Absent subscriber (SM)", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "9": ("Illegal subscriber", True, pb.DELIVERY_STATUS_REJECTED),
    "13": ("Call barred", True, pb.DELIVERY_STATUS_REJECTED),
    "27": ("Absent subscriber", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "31": ("Subscriber busy for MT SMS", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "34": ("System failure", None, None),
    "103": ("Contact sent STOP (opted out)", True, pb.DELIVERY_STATUS_REJECTED),
}
#: MessageBird statuses for ``dlrhub send-sample``.
SAMPLE_STATUSES = {
    "accepted": "scheduled",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "delivery_failed",
    "expired": "expired",
}
JWT_HEADER = "MessageBird-Signature-JWT"
LEGACY_HEADER = "MessageBird-Signature"
LEGACY_TIMESTAMP = "MessageBird-Request-Timestamp"
#: The algorithms MessageBird's own validator accepts.
ALGORITHMS = ("HS256", "HS384", "HS512")
DEFAULT_TOLERANCE_SECONDS = 300


class MessageBirdCredentials(Credentials):
    """MessageBird credentials."""

    signing_key: Secrets = Field(
        (), description="Signing keys (Developer settings; not the API key); several to rotate."
    )
    timestamp_tolerance_seconds: int = tolerance(
        DEFAULT_TOLERANCE_SECONDS,
        "Oldest MessageBird-Request-Timestamp accepted (deprecated scheme; 0: any).",
    )


class MessageBird(Provider):
    name = "messagebird"
    methods = frozenset({"GET", "POST"})
    credentials: MessageBirdCredentials

    def verify(self, request: InboundRequest) -> str:
        token = request.header(JWT_HEADER)
        if token:
            self._verify_jwt(request, token)
            return "messagebird_jwt"
        signature = request.header(LEGACY_HEADER)
        if signature:
            self._verify_legacy(request, signature)
            return "messagebird_hmac"
        raise self.unauthenticated(f"no {JWT_HEADER} or {LEGACY_HEADER} header", label="missing")

    def _verify_jwt(self, request: InboundRequest, token: str) -> None:
        try:
            claims = jwt.decode(
                token.strip(),
                signatures.secret_values(self.credentials.signing_key),
                now=self.clock(),
                algorithms=ALGORITHMS,
                required=("iss", "nbf", "exp"),
                leeway=1.0,
            )
        except jwt.TokenError as exc:
            raise self.unauthenticated(exc.reason, label=exc.label) from None
        if claims.get("iss") != "MessageBird":
            raise self.unauthenticated("token issuer is not MessageBird")
        url_hash = claims.get("url_hash")
        if not isinstance(url_hash, str) or not signatures.equal(
            signatures.sha256_hex(request.url.encode("utf-8")), url_hash
        ):
            raise self.unauthenticated("url_hash does not match the URL called")
        payload_hash = claims.get("payload_hash")
        if bool(request.body) != bool(payload_hash):
            raise self.unauthenticated("payload_hash and the body disagree on there being a body")
        if request.body and not (
            isinstance(payload_hash, str)
            and signatures.equal(signatures.sha256_hex(request.body), payload_hash)
        ):
            raise self.unauthenticated("payload_hash does not match the body")

    def _verify_legacy(self, request: InboundRequest, signature: str) -> None:
        stamp = request.header(LEGACY_TIMESTAMP) or ""
        message = legacy_message(stamp, request.query, request.body)
        keys = signatures.secret_values(self.credentials.signing_key)
        if not signatures.hmac_matches(keys, message, [signature.strip()]):
            raise self.unauthenticated(f"{LEGACY_HEADER} does not match")
        tolerance = self.credentials.timestamp_tolerance_seconds
        self.check_timestamp(stamp, f"messagebird: {LEGACY_TIMESTAMP}", tolerance)

    def parse(self, request: InboundRequest) -> Parsed:
        if request.method == "POST":
            self.require_content_type(request, "application/x-www-form-urlencoded")
        params = request.params()
        if not params.get("id"):
            raise Malformed("id is missing")
        return Parsed.of(params, normalize)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return normalize(json_object(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        now = datetime.fromtimestamp(self.clock(), tz=UTC).replace(microsecond=0)
        params = {
            "id": message_id,
            "reference": "sample",
            "recipient": "31612345678",
            "status": SAMPLE_STATUSES.get(status, "delivered"),
            "statusDatetime": now.isoformat(),
            "mccmnc": "20408",
            "ported": "0",
        }
        signed_url = url + ("&" if "?" in url else "?") + urlencode(params)
        key = signatures.first_secret(self.credentials.signing_key)
        headers = {JWT_HEADER: sign(signed_url, b"", key, now=self.clock())}
        return SampleRequest("GET", signed_url, headers, b"")

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("signing_key"): secrets.token_urlsafe(24)}


def normalize(params: dict[str, Any]) -> pb.DeliveryReport:
    """One status report → a report (provider-level fields are stamped later). Only id and
    status are required; an unreadable informational field is left out. The event time is
    ``statusDatetime`` (RFC 3339 with an offset), else the receive time."""
    message = required(params.get("id"), "id", limit=128)
    raw_status = required(params.get("status"), "status", limit=64)
    parts = params.get("messagePartCount")
    report = pb.DeliveryReport(
        message_id=message,
        status=STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN),
        provider_status=raw_status,
        recipient=recipient(params.get("recipient"), "recipient"),
        client_ref=lenient("client_ref", "", text, params.get("reference"), "reference", limit=128),
        segments=lenient("segments", 0, whole_number, parts, "messagePartCount"),
        raw=raw_json(params),
    )
    code = text(params.get("statusErrorCode"), "statusErrorCode", limit=16).strip()
    if code and code != "0":
        apply_error_code(report, code, ERROR_CODES)  # a GSM or MessageBird error code
        reason = params.get("statusReason")
        described = lenient("error_text", "", text, reason, "statusReason", limit=256).strip()
        report.error.description = described or report.error.description
    amount, currency = params.get("price[amount]"), params.get("price[currency]")
    report.price.amount = lenient("price", "", decimal_text, amount, "price[amount]")
    report.price.currency = lenient("price", "", text, currency, "price[currency]", limit=8)
    network = lenient("mcc_mnc", ("", ""), network_code, params.get("mccmnc"), "mccmnc")
    report.mcc, report.mnc = network
    when = params.get("statusDatetime")
    set_time(report.event_time, lenient("event_time", None, iso_time, when, "statusDatetime"))
    return report


def legacy_message(timestamp: str, query: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    """What the deprecated ``MessageBird-Signature`` covers."""
    ordered = sorted(query, key=lambda pair: pair[0])
    return f"{timestamp}\n{urlencode(ordered)}\n".encode() + hashlib.sha256(body).digest()


def sign(url: str, body: bytes, key: str, *, now: float, algorithm: str = "HS256") -> str:
    """A ``MessageBird-Signature-JWT`` value (for tests and ``dlrhub send-sample``)."""
    claims: dict[str, Any] = {
        "iss": "MessageBird",
        "nbf": int(now),
        "exp": int(now) + 60,
        "jti": str(uuid.uuid4()),
        "url_hash": signatures.sha256_hex(url.encode("utf-8")),
    }
    if body:
        claims["payload_hash"] = signatures.sha256_hex(body)
    return jwt.encode(claims, key.encode("utf-8"), algorithm)


def sign_legacy(timestamp: str, query: tuple[tuple[str, str], ...], body: bytes, key: str) -> str:
    """A deprecated ``MessageBird-Signature`` value."""
    return signatures.hmac_b64(key.encode("utf-8"), legacy_message(timestamp, query, body))

"""Sinch SMS REST API delivery reports: JSON POSTs, per recipient or per batch.

``delivery_report=per_recipient``/``per_recipient_final`` sends one recipient report per
request (``recipient_delivery_report_sms``/``_mms``); ``full`` sends batch reports
(``delivery_report_sms``/``_mms``) whose status buckets list their recipients, each becoming
one report; a ``summary`` batch report names no recipients and cannot be told apart per
message, so it is quarantined (kept raw) with that reason. A message is
``<batch_id>:<recipient>``.

Authenticity, whichever your Sinch account manager enabled: HMAC signature headers
(``x-sinch-webhook-signature`` = base64 HMAC-SHA256 over ``body.nonce.timestamp``, with the
signed timestamp inside a window) or HTTP Basic credentials on the callback URL. Configured
methods are alternatives: a request must pass one, and a request carrying a signature must
pass the signature. See docs/providers/sinch.md.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import BasicPairs, Secrets
from gateway.auth import basic, signatures
from gateway.errors import Malformed, Unauthenticated
from gateway.providers.base import (
    InboundRequest,
    InvalidItem,
    Parsed,
    Provider,
    SampleRequest,
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
    required,
    set_time,
    text,
    whole_number,
)

# Statuses, compared case-insensitively (the docs write Delivered, the Python SDK DELIVERED).
STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "queued": pb.DELIVERY_STATUS_QUEUED,
    "dispatched": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    # judgment: an operator-reported failure; codes of Sinch-side failures refine it
    "failed": pb.DELIVERY_STATUS_UNDELIVERED,
    "expired": pb.DELIVERY_STATUS_EXPIRED,
    "rejected": pb.DELIVERY_STATUS_REJECTED,
    # judgment: deleted by a remote SMSC (invalid number, opted out): not delivered
    "deleted": pb.DELIVERY_STATUS_UNDELIVERED,
    "aborted": pb.DELIVERY_STATUS_FAILED,  # aborted before reaching the SMSC
    "cancelled": pb.DELIVERY_STATUS_FAILED,  # cancelled by the user before the SMSC
    "unknown": pb.DELIVERY_STATUS_UNKNOWN,
}
#: Sinch detail codes: (description, permanent or None when Sinch does not say, the
#: canonical status a failure with this code gets, or None to keep the mapped one).
CODES: ErrorCodes = {
    "400": ("Queued", None, None),
    "401": ("Dispatched", None, None),
    "402": ("Message unroutable", True, pb.DELIVERY_STATUS_FAILED),
    "403": ("Internal error", None, pb.DELIVERY_STATUS_FAILED),
    "404": ("Temporary delivery failure", False, None),
    "405": ("Unmatched parameter", True, pb.DELIVERY_STATUS_FAILED),
    "406": ("Internal expiry", None, pb.DELIVERY_STATUS_EXPIRED),
    "407": ("Cancelled", None, pb.DELIVERY_STATUS_FAILED),
    "408": ("Internal reject", True, pb.DELIVERY_STATUS_FAILED),
    "410": ("Unmatched default originator", True, pb.DELIVERY_STATUS_FAILED),
    "411": ("Exceeded parts limit", True, pb.DELIVERY_STATUS_REJECTED),
    "412": ("Unprovisioned region", True, pb.DELIVERY_STATUS_FAILED),
    "413": ("Blocked", True, pb.DELIVERY_STATUS_FAILED),
    "414": ("Bad media", True, pb.DELIVERY_STATUS_REJECTED),
    "415": ("Delivery report rejected by the MMSC", None, None),
    "416": ("Not supported", True, pb.DELIVERY_STATUS_REJECTED),
    "417": ("Unreachable", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "418": ("Unrecognized", None, None),
}
RECIPIENT_TYPES = frozenset({"recipient_delivery_report_sms", "recipient_delivery_report_mms"})
BATCH_TYPES = frozenset({"delivery_report_sms", "delivery_report_mms"})
#: Most recipients one batch report may name.
MAX_RECIPIENTS = 10_000
#: Sinch statuses and codes for ``dlrhub send-sample``.
SAMPLE_STATUSES: dict[str, tuple[str, int]] = {
    "queued": ("Queued", 400),
    "sent": ("Dispatched", 401),
    "delivered": ("Delivered", 0),
    "undelivered": ("Failed", 404),
    "failed": ("Aborted", 403),
    "expired": ("Expired", 406),
    "rejected": ("Rejected", 0),
    "unknown": ("Unknown", 0),
}
SAMPLE_RECIPIENT = "46700000001"
SIGNATURE = "x-sinch-webhook-signature"
NONCE = "x-sinch-webhook-signature-nonce"
TIMESTAMP = "x-sinch-webhook-signature-timestamp"
#: The signed timestamp may be this old by default: Sinch retries for up to 22 h 45 min,
#: and whether a retry is signed afresh is not documented.
DEFAULT_TOLERANCE_SECONDS = 24 * 3600


class SinchCredentials(Credentials):
    """Sinch credentials; any one configured method must pass."""

    webhook_secret: Secrets = Field((), description="Secrets of the HMAC signature headers.")
    basic_auth: BasicPairs = Field((), description="HTTP Basic `user:password` pairs.")
    timestamp_tolerance_seconds: int = tolerance(DEFAULT_TOLERANCE_SECONDS)


class Sinch(Provider):
    name = "sinch"
    credentials: SinchCredentials

    def verify(self, request: InboundRequest) -> str:
        creds = self.credentials
        if request.header(SIGNATURE) and creds.webhook_secret:
            self._verify_signature(request)
            return "sinch_hmac"
        if request.header("authorization") and creds.basic_auth:
            try:
                basic.check(request.header("authorization"), creds.basic_auth)
            except Unauthenticated as exc:
                raise self.unauthenticated(str(exc), label=exc.label) from None
            return "basic"
        if request.header(SIGNATURE) or request.header("authorization"):
            raise self.unauthenticated("the request's credentials are not the configured kind")
        raise self.unauthenticated("no signature headers or Basic credentials", label="missing")

    def _verify_signature(self, request: InboundRequest) -> None:
        nonce, stamp = request.header(NONCE), request.header(TIMESTAMP)
        if not nonce or not stamp:
            raise self.unauthenticated("signature nonce or timestamp header missing")
        message = request.body + f".{nonce}.{stamp}".encode()
        keys = signatures.secret_values(self.credentials.webhook_secret)
        given = [(request.header(SIGNATURE) or "").strip()]
        if not signatures.hmac_matches(keys, message, given):
            raise self.unauthenticated(f"{SIGNATURE} does not match")
        tolerance = self.credentials.timestamp_tolerance_seconds
        self.check_timestamp(stamp, f"sinch: {TIMESTAMP}", tolerance)

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise Malformed('body must be a JSON object with a "type"')
        self.check_items(recipient_count(body))
        return Parsed.of(body, reports_of)

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return only_report(reports_of(json_object(raw)))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        sinch_status, code = SAMPLE_STATUSES.get(status, SAMPLE_STATUSES["delivered"])
        # A Sinch message is <batch_id>:<recipient>; a bare id becomes the batch id.
        batch_id, _, recipient = message_id.rpartition(":")
        if not batch_id:
            batch_id, recipient = message_id, SAMPLE_RECIPIENT
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        item = {
            "type": "recipient_delivery_report_sms",
            "batch_id": batch_id,
            "recipient": recipient,
            "status": sinch_status,
            "code": code,
            "at": now,
            "client_reference": "sample",
        }
        body = raw_json(item).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        creds = self.credentials
        if creds.webhook_secret:
            nonce, stamp = secrets.token_hex(13), str(int(self.clock()))
            secret = signatures.first_secret(creds.webhook_secret)
            headers[SIGNATURE] = sign(body, nonce, stamp, secret)
            headers[NONCE], headers[TIMESTAMP] = nonce, stamp
        elif creds.basic_auth:
            user_password = signatures.first_secret(creds.basic_auth)
            headers["Authorization"] = basic.authorization(user_password)
        return SampleRequest(
            "POST", url, headers, body, message_id=message_key(batch_id, recipient)
        )

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("webhook_secret"): secrets.token_urlsafe(24)}


def reports_of(body: dict[str, Any]) -> list[pb.DeliveryReport]:
    """A recipient or batch report → reports; anything else (inbound ``mo_*``) is invalid."""
    kind = text(body.get("type"), "type", limit=64)
    if kind in RECIPIENT_TYPES:
        return [recipient_report(body)]
    if kind in BATCH_TYPES:
        return batch_reports(body)
    raise InvalidItem(f"type {kind[:64]!r} is not a delivery report")


def message_key(batch_id: str, number: str) -> str:
    """``<batch_id>:<recipient>``: the id of one recipient's message in a batch, the number in
    E.164 (Sinch writes ``+44…`` in recipient reports and ``44…`` in batch reports)."""
    return f"{batch_id}:{identity_number(number)}"


def _status(raw: object, code: object) -> tuple[pb.DeliveryStatus.ValueType, str, int | None]:
    raw_status = required(raw, "status", limit=64)
    status = STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN)
    number = None if code is None or code == "" else whole_number(code, "code")
    return status, raw_status, number


def _apply_code(report: pb.DeliveryReport, number: int | None) -> None:
    """Sets the error from a detail code (0 is success) and refines a failure's status."""
    if not number:
        return
    if number in (400, 401):  # Queued/Dispatched progress codes, not errors
        return
    apply_error_code(report, str(number), CODES)


def recipient_report(item: dict[str, Any]) -> pb.DeliveryReport:
    """One recipient report → a report. The event time is ``operator_status_at`` (the
    operator's own time for the status, ISO 8601), else ``at`` (when Sinch made the report,
    the only time intermediate statuses carry), else the receive time."""
    batch_id = text(item.get("batch_id"), "batch_id", limit=64).strip()
    number = text(item.get("recipient"), "recipient", limit=64).strip()
    if not batch_id or not number:
        raise InvalidItem("batch_id or recipient is missing")
    status, raw_status, code = _status(item.get("status"), item.get("code"))
    parts = item.get("number_of_message_parts")
    report = pb.DeliveryReport(
        message_id=message_key(batch_id, number),
        batch_id=batch_id,
        status=status,
        provider_status=raw_status,
        recipient=recipient(number, "recipient"),
        sender=lenient(
            "sender", "", text, item.get("applied_originator"), "applied_originator", limit=64
        ),
        client_ref=lenient(
            "client_ref", "", text, item.get("client_reference"), "client_reference"
        ),
        segments=lenient("segments", 0, whole_number, parts, "number_of_message_parts"),
        raw=raw_json(item),
    )
    _apply_code(report, code)
    operator = item.get("operator_status_at")
    when = first_time(
        lenient("event_time", None, iso_time, operator, "operator_status_at"),
        lenient("event_time", None, iso_time, item.get("at"), "at"),
    )
    set_time(report.event_time, when)
    return report


def recipient_count(body: dict[str, Any]) -> int:
    """How many reports a body stands for, read off its envelope: a batch report's recipients
    across its status buckets, else one."""
    buckets = body.get("statuses")
    if not isinstance(buckets, list):
        return 1
    listed = (bucket.get("recipients") for bucket in buckets if isinstance(bucket, dict))
    return max(1, sum(len(names) for names in listed if isinstance(names, list)))


def batch_reports(item: dict[str, Any]) -> list[pb.DeliveryReport]:
    """A ``full`` batch report → one report per recipient listed in its status buckets. A
    batch report carries no event time: the receive time stands for it."""
    batch_id = text(item.get("batch_id"), "batch_id", limit=64).strip()
    buckets = item.get("statuses")
    if not batch_id or not isinstance(buckets, list):
        raise InvalidItem("batch report without batch_id or statuses")
    reports: list[pb.DeliveryReport] = []
    for bucket in buckets:
        if not isinstance(bucket, dict):
            raise InvalidItem("a statuses entry is not an object")
        recipients = bucket.get("recipients")
        if recipients is None:
            raise InvalidItem(
                "a summary batch report names no recipients: send with delivery_report=full "
                "or per_recipient to track each message"
            )
        if not isinstance(recipients, list) or len(recipients) > MAX_RECIPIENTS:
            raise InvalidItem("statuses[].recipients is not a list of at most 10000")
        status, raw_status, code = _status(bucket.get("status"), bucket.get("code"))
        reference = lenient(
            "client_ref", "", text, item.get("client_reference"), "client_reference"
        )
        for listed in recipients:
            number = text(listed, "recipients[]", limit=64).strip()
            if not number:
                raise InvalidItem("statuses[].recipients has an empty entry")
            report = pb.DeliveryReport(
                message_id=message_key(batch_id, number),
                batch_id=batch_id,
                status=status,
                provider_status=raw_status,
                recipient=recipient(number, "recipients[]"),
                client_ref=reference,
                raw=raw_json({**item, "statuses": [{**bucket, "recipients": [listed]}]}),
            )
            _apply_code(report, code)
            reports.append(report)
    return reports


def sign(body: bytes, nonce: str, timestamp: str, secret: str) -> str:
    """An ``x-sinch-webhook-signature`` value (for tests and ``dlrhub send-sample``)."""
    return signatures.hmac_b64(secret.encode("utf-8"), body + f".{nonce}.{timestamp}".encode())


def sign_now(body: bytes, secret: str) -> dict[str, str]:
    """The three signature headers for ``body``, signed now."""
    nonce, stamp = secrets.token_hex(13), str(int(time.time()))
    return {SIGNATURE: sign(body, nonce, stamp, secret), NONCE: nonce, TIMESTAMP: stamp}

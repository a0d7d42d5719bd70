"""Vonage SMS API delivery receipts: one GET (query), POST (form) or POST-JSON per receipt.

Authenticity: signed webhooks. Every parameter but ``sig`` (``timestamp`` and ``nonce``
included), with ``&`` and ``=`` inside values replaced by ``_``, sorted by name, forms
``&k1=v1&k2=v2...``; ``sig`` is the lower-case hex ``md5(string + secret)`` for the
``md5hash`` method, or the HMAC (MD5, SHA-1, SHA-256, SHA-512) of the string keyed with the
signature secret. The method is the one chosen in the Vonage dashboard; only that one is
accepted. The signed ``timestamp`` must fall inside a window wide enough for Vonage's retries.
Names are not escaped: a name with ``&`` or ``=`` (``err-code=6&x``) would sign like two
parameters, so it is refused (401), and so is a JSON receipt's object or array value, whose
text is not escaped either.

Multipart: Vonage sends one receipt **per part**, each with its own ``messageId`` and no id of
the whole message. Each part is stored as its own message. When every message is sent with a
unique ``client-ref``, ``DLRHUB_VONAGE_CLIENT_REF_IS_PARENT=true`` makes that reference the
parent id, so the whole message's status is aggregated at read time. See
docs/providers/vonage.md.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import Field

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.settings import Secrets
from gateway.auth import canonical, signatures
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
    ErrorCodes,
    apply_error_code,
    decimal_text,
    lenient,
    network_code,
    recipient,
    required,
    set_time,
    text,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "accepted": pb.DELIVERY_STATUS_SENT,  # the carrier accepted it: no handset receipt yet
    # judgment: waiting at the SMSC (handset off or out of coverage): handed off, not delivered
    "buffered": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "expired": pb.DELIVERY_STATUS_EXPIRED,
    # judgment: a carrier-reported failure after hand-off; err-code refines it
    "failed": pb.DELIVERY_STATUS_UNDELIVERED,
    "rejected": pb.DELIVERY_STATUS_REJECTED,
    "unknown": pb.DELIVERY_STATUS_UNKNOWN,
}
#: ``err-code`` values: (description, permanent or None when Vonage does not say, the
#: canonical status a failure with this code gets, or None to keep the mapped one).
ERROR_CODES: ErrorCodes = {
    "1": ("Unknown", None, None),
    "2": ("Absent Subscriber - Temporary", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "3": ("Absent Subscriber - Permanent", True, pb.DELIVERY_STATUS_REJECTED),
    "4": ("Call Barred by User", True, pb.DELIVERY_STATUS_REJECTED),
    "5": ("Portability Error", None, None),
    "6": ("Anti-Spam Rejection", True, pb.DELIVERY_STATUS_REJECTED),
    "7": ("Handset Busy", False, None),
    "8": ("Network Error", False, None),
    "9": ("Illegal Number", True, pb.DELIVERY_STATUS_REJECTED),  # the user opted out
    "10": ("Illegal Message", True, pb.DELIVERY_STATUS_REJECTED),
    # judgment: no route is the provider's failure at hand-off, not the carrier's
    "11": ("Unroutable", None, pb.DELIVERY_STATUS_FAILED),
    "12": ("Destination Unreachable", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "13": ("Subscriber Age Restriction", True, pb.DELIVERY_STATUS_REJECTED),
    "14": ("Number Blocked by Carrier", True, pb.DELIVERY_STATUS_REJECTED),
    "15": ("Pre-Paid - Insufficient funds", None, None),
    "95": ("Unknown", None, None),
    "99": ("General Error", None, None),
}
#: Statuses an error code may refine (failures only).
REFINABLE = frozenset({pb.DELIVERY_STATUS_UNDELIVERED, pb.DELIVERY_STATUS_REJECTED})
#: Vonage statuses and err-codes for ``dlrhub send-sample``.
SAMPLE_STATUSES: dict[str, tuple[str, str]] = {
    "sent": ("accepted", "0"),
    "delivered": ("delivered", "0"),
    "undelivered": ("failed", "2"),
    "expired": ("expired", "1"),
    "rejected": ("rejected", "6"),
    "failed": ("failed", "11"),
    "unknown": ("unknown", "1"),
}
SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]
#: A receipt's signed timestamp may be this old by default: Vonage retries receipts for up
#: to 72 hours, and whether a retry is signed afresh is not documented.
DEFAULT_TOLERANCE_SECONDS = 72 * 3600


class VonageCredentials(Credentials):
    """Vonage SMS API credentials."""

    signature_secret: Secrets = Field(
        (), description="Signature secrets (not the API secret); several during a rotation."
    )
    signature_method: SignatureMethod = Field(
        "md5hash", description="The dashboard's signature method: md5hash, md5, sha1, ..."
    )
    timestamp_tolerance_seconds: int = tolerance(DEFAULT_TOLERANCE_SECONDS)
    client_ref_is_parent: bool = Field(
        False, description="Use client-ref as the parent id of per-part receipts."
    )


class Vonage(Provider):
    name = "vonage"
    methods = frozenset({"POST", "GET"})
    credentials: VonageCredentials

    def verify(self, request: InboundRequest) -> str:
        params = receipt_params(request)
        given = params.get("sig")
        if not given:
            raise self.unauthenticated(
                "no sig parameter (are signed webhooks on?)", label="missing"
            )
        creds = self.credentials
        signed = {key: value for key, value in params.items() if key != "sig"}
        problem = canonical.separators_in(signed.items(), "&=") or _nested(signed)
        if problem:
            raise self.unauthenticated(problem)
        expected = [
            signature(signed, secret, creds.signature_method)
            for secret in signatures.secret_values(creds.signature_secret)
        ]
        if not signatures.any_equal(expected, [given.strip().lower()]):
            raise self.unauthenticated(f"sig does not match ({creds.signature_method})")
        tolerance = creds.timestamp_tolerance_seconds
        self.check_timestamp(params.get("timestamp"), "vonage: timestamp", tolerance)
        return f"vonage_{creds.signature_method}"

    def parse(self, request: InboundRequest) -> Parsed:
        params = receipt_params(request)
        if not params.get("messageId"):
            raise Malformed("messageId is missing")
        return Parsed.of(params, lambda item: self._with_parent(normalize(item)))

    def _with_parent(self, report: pb.DeliveryReport) -> pb.DeliveryReport:
        """With ``client_ref_is_parent``, the part's client-ref becomes its parent id."""
        client_ref = report.client_ref.strip()
        if self.credentials.client_ref_is_parent and client_ref != report.message_id:
            report.parent_message_id = client_ref[:128]
        return report

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return self._with_parent(normalize(json_object(raw)))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        vonage_status, code = SAMPLE_STATUSES.get(status, SAMPLE_STATUSES["delivered"])
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        params = {
            "msisdn": "447700900000",
            "to": "AcmeInc",
            "network-code": "23410",
            "messageId": message_id,
            "price": "0.03330000",
            "status": vonage_status,
            "scts": now.strftime("%y%m%d%H%M"),
            "err-code": code,
            "api-key": "abcd1234",
            "client-ref": "sample",
            "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
            "timestamp": str(int(self.clock())),
            "nonce": secrets.token_hex(16),
        }
        creds = self.credentials
        secret = signatures.first_secret(creds.signature_secret)
        params["sig"] = sign(params, secret, creds.signature_method)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return SampleRequest("POST", url, headers, urlencode(params).encode("utf-8"))

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {
            cls.env("signature_secret"): secrets.token_urlsafe(24),
            cls.env("signature_method"): "sha256",
        }


def receipt_params(request: InboundRequest) -> dict[str, Any]:
    """The receipt's parameters: the query (GET), the form (POST) or the JSON object."""
    if request.method == "POST" and request.content_type == "application/json":
        body = json_body(request)
        if not isinstance(body, dict):
            raise Malformed("a POST-JSON receipt must be a JSON object")
        return body
    if request.method == "POST" and request.content_type != "application/x-www-form-urlencoded":
        shown = request.content_type or "none"
        raise Malformed(f"vonage sends a form or JSON with POST, this request has {shown}")
    return request.params()


def _nested(params: dict[str, Any]) -> str:
    """Why a JSON receipt cannot be signed unambiguously: an object or array value, whose
    JSON text could hold ``&`` and ``=`` (Vonage's receipts are flat)."""
    for key, value in params.items():
        if isinstance(value, dict | list):
            return f"parameter {key[:64]!r} is an object or array: its signed text is ambiguous"
    return ""


def _signed_value(value: object) -> str:
    """A parameter as the signature covers it: strings with ``&``/``=`` replaced by ``_``;
    numbers in JSON receipts as their decimal text (bool and null as JSON text)."""
    if isinstance(value, str):
        return value.replace("&", "_").replace("=", "_")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def signing_string(params: dict[str, Any]) -> str:
    """``&k1=v1&k2=v2...`` over every parameter but ``sig``, sorted by name."""
    return "".join(f"&{key}={_signed_value(params[key])}" for key in sorted(params) if key != "sig")


def signature(params: dict[str, Any], secret: bytes, method: str) -> str:
    """Lower-case hex signature of ``params`` with one secret and method."""
    message = signing_string(params).encode("utf-8")
    if method == "md5hash":
        return hashlib.md5(message + secret, usedforsecurity=False).hexdigest()
    return signatures.hmac_hex(secret, message, method)


def sign(params: dict[str, Any], secret: str, method: str = "md5hash") -> str:
    """A ``sig`` value (for tests and ``dlrhub send-sample``); adds ``timestamp`` if absent."""
    params.setdefault("timestamp", str(int(time.time())))
    return signature(params, secret.encode("utf-8"), method)


def normalize(params: dict[str, Any]) -> pb.DeliveryReport:
    """One receipt → a report (provider-level fields are stamped later). Only messageId and
    status are required; an unreadable informational field is left out.

    The event time is ``message-timestamp`` (``YYYY-MM-DD HH:MM:SS``, UTC: when Vonage pushed
    the receipt); without a readable one, the receive time stands for it. ``scts`` is the
    carrier's local time with no zone (``YYMMDDHHMM``): carrier information kept in ``raw``,
    never read as the event time.
    """
    message = required(params.get("messageId"), "messageId", limit=128)
    raw_status = required(params.get("status"), "status", limit=64)
    status = STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN)
    report = pb.DeliveryReport(
        message_id=message,
        provider_status=raw_status,
        recipient=recipient(params.get("msisdn"), "msisdn"),  # msisdn: the recipient
        sender=lenient("sender", "", text, params.get("to"), "to", limit=64),  # your sender id
        client_ref=lenient("client_ref", "", text, params.get("client-ref"), "client-ref"),
        raw=raw_json(params),
    )
    report.price.amount = lenient("price", "", decimal_text, params.get("price"), "price")
    network = lenient("mcc_mnc", ("", ""), network_code, params.get("network-code"), "network-code")
    report.mcc, report.mnc = network
    report.status = status
    code = text(params.get("err-code"), "err-code", limit=16).strip().lstrip("0")
    if code:
        apply_error_code(report, code, ERROR_CODES, REFINABLE)
    stamp = params.get("message-timestamp")
    set_time(report.event_time, lenient("event_time", None, parse_timestamp, stamp))
    return report


def parse_timestamp(value: object) -> datetime | None:
    """``message-timestamp``: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if value is None or value == "":
        return None
    raw = str(value).strip()
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidItem(f"message-timestamp is not a date-time: {raw[:30]!r}") from None

"""Twilio Programmable Messaging status callbacks: one form POST per status change.

Authenticity: ``X-Twilio-Signature`` is base64 HMAC-SHA1, keyed with the auth token, over the
URL Twilio called (query included) followed by every form parameter sorted by name, each as
``name`` + ``value`` (values of a repeated name sorted, duplicates dropped). Twilio is
inconsistent about the default port, so the URL is tried as received, without its port and
with ``:443``/``:80`` added. A JSON body is signed through the URL: the query carries
``bodySHA256`` (hex SHA-256 of the body) and the HMAC covers the URL alone. A webhook signed
with a SharedKey names its algorithm in ``X-Twilio-Webhooks-Signature-Settings``
(``HMAC_SHA256``); configure that key's secret beside the auth token. Names and values are
concatenated with nothing between them, so a form that could be re-split to change a field
dlrhub reads is refused (gateway/auth/canonical.py). No time is signed: duplicates are caught
by statusd's dedupe on an event id that is a digest of the signed string (the
``I-Twilio-Idempotency-Token`` header is not signed, so it cannot tell a retry from a
replay). See docs/providers/twilio.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

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
    json_object,
    raw_json,
)
from gateway.providers.credentials import Credentials
from gateway.providers.fields import (
    ErrorCodes,
    apply_error_code,
    lenient,
    recipient,
    required,
    text,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "accepted": pb.DELIVERY_STATUS_ACCEPTED,
    "scheduled": pb.DELIVERY_STATUS_ACCEPTED,
    "queued": pb.DELIVERY_STATUS_QUEUED,
    # judgment: Twilio is handing it to the carrier, which has not acknowledged it yet
    "sending": pb.DELIVERY_STATUS_QUEUED,
    "sent": pb.DELIVERY_STATUS_SENT,
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_DELIVERED,  # WhatsApp/RCS read receipt: delivered, and read
    "undelivered": pb.DELIVERY_STATUS_UNDELIVERED,
    "failed": pb.DELIVERY_STATUS_FAILED,
    # judgment: a cancelled scheduled message never left Twilio: a provider-side end
    "canceled": pb.DELIVERY_STATUS_FAILED,
    # judgment: some recipients or parts did not get it; the raw status is kept
    "partially_delivered": pb.DELIVERY_STATUS_UNDELIVERED,
    # Unknown to carriers after the validity period (listed in older docs)
    "delivery_unknown": pb.DELIVERY_STATUS_UNKNOWN,
}
#: Twilio error codes seen in status callbacks: (description, permanent or None when Twilio
#: does not say, the canonical status a failure with this code gets, or None to keep it).
ERROR_CODES: ErrorCodes = {
    "30001": ("Queue overflow", False, pb.DELIVERY_STATUS_FAILED),
    "30002": ("Account suspended", None, pb.DELIVERY_STATUS_FAILED),
    "21610": (
        "Attempt to send to unsubscribed recipient (replied STOP)",
        True,
        pb.DELIVERY_STATUS_REJECTED,
    ),
    "21614": ("'To' number is not a valid mobile number", True, pb.DELIVERY_STATUS_REJECTED),
    "30003": ("Unreachable destination handset", False, pb.DELIVERY_STATUS_UNDELIVERED),
    "30004": ("Message blocked", True, pb.DELIVERY_STATUS_REJECTED),
    "30005": ("Unknown destination handset", True, pb.DELIVERY_STATUS_REJECTED),
    "30006": ("Landline or unreachable carrier", True, pb.DELIVERY_STATUS_REJECTED),
    "30007": ("Message filtered (carrier violation)", True, pb.DELIVERY_STATUS_REJECTED),
    "30008": ("Unknown error", None, None),
    "30009": ("Missing inbound segment", None, None),
    "30010": ("Message price exceeds max price", True, pb.DELIVERY_STATUS_FAILED),
    "30034": ("US A2P 10DLC: unregistered number", True, pb.DELIVERY_STATUS_REJECTED),
    "30036": ("Validity period expired", True, pb.DELIVERY_STATUS_EXPIRED),
}
#: Inbound statuses: a message someone sent *to* you, not a delivery report.
INBOUND = frozenset({"receiving", "received"})
#: Twilio statuses and error codes for ``dlrhub send-sample``.
SAMPLE_STATUSES: dict[str, tuple[str, str]] = {
    "accepted": ("accepted", ""),
    "queued": ("queued", ""),
    "sent": ("sent", ""),
    "delivered": ("delivered", ""),
    "undelivered": ("undelivered", "30003"),
    "failed": ("failed", "30001"),
    "rejected": ("undelivered", "30007"),
    "expired": ("undelivered", "30036"),
    "unknown": ("delivery_unknown", ""),
}
SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
#: Algorithms a signature-settings header may name (the auth token signs with SHA-1).
ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
DEFAULT_PORTS = {"https": 443, "http": 80}
#: The parameters dlrhub reads: no re-split of the signed string may touch them.
DECISIVE = frozenset(
    {"MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "MessagingServiceSid"}
)
#: Every parameter Twilio documents for messaging status callbacks.
PARAMETERS = DECISIVE | {
    "AccountSid",
    "ApiVersion",
    "Body",
    "ChannelInstallSid",
    "ChannelPrefix",
    "ChannelStatusMessage",
    "ChannelToAddress",
    "ErrorMessage",
    "EventType",
    "From",
    "NumMedia",
    "NumSegments",
    "RawDlrDoneDate",
    "StructuredMessage",
    "To",
}
#: Prefix of the event id: a digest of what the signature covers.
EVENT_ID_PREFIX = "twilio-signed:"


class TwilioCredentials(Credentials):
    """Twilio credentials."""

    auth_token: Secrets = Field(
        (), description="Auth tokens (and SharedKey secrets); several during a rotation."
    )


class Twilio(Provider):
    name = "twilio"
    credentials: TwilioCredentials

    def verify(self, request: InboundRequest) -> str:
        signature = self.required_header(request, SIGNATURE_HEADER)
        setting = _algorithm(request.header(SETTINGS_HEADER))
        algorithm = ALGORITHMS.get(setting)
        if algorithm is None:
            raise self.unauthenticated(f"signature algorithm {setting[:32]!r} is not supported")
        pairs: tuple[tuple[str, str], ...] = request.form
        body_hash = [value for key, value in request.query if key == "bodySHA256"]
        if body_hash and not request.form:
            # A JSON body: the URL carries its hash and the HMAC covers the URL alone.
            if not signatures.equal(signatures.sha256_hex(request.body), body_hash[-1].lower()):
                raise self.unauthenticated("bodySHA256 does not match the body")
            pairs = ()
        signed = signed_order(pairs)  # checked as signed, whatever order the body lists them in
        problem = canonical.concatenation_problem(request.url, signed, DECISIVE, PARAMETERS)
        if problem:
            raise self.unauthenticated(problem)
        keys = signatures.secret_values(self.credentials.auth_token)
        params = joined(signed)  # once for every URL variant and key
        expected = [
            signature_of(url + params, key, algorithm)
            for url in url_variants(request.url)
            for key in keys
        ]
        if signatures.any_equal(expected, [signature.strip()]):
            return "twilio_sha256" if algorithm == "sha256" else "twilio_sha1"
        raise self.unauthenticated(f"{SIGNATURE_HEADER} does not match")

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/x-www-form-urlencoded")
        params = dict(request.form)
        if not (params.get("MessageSid") or params.get("SmsSid")):
            raise Malformed("MessageSid is missing")
        parsed = Parsed.of(params, normalize)
        for report in parsed.reports:
            report.event_id = event_id(request.url, request.form)
        return parsed

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        """A quarantined item parsed again with today's code (quarantine replay)."""
        return normalize(json_object(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        twilio_status, code = SAMPLE_STATUSES.get(status, SAMPLE_STATUSES["delivered"])
        form = [
            ("AccountSid", "AC" + "0" * 32),
            ("ApiVersion", "2010-04-01"),
            ("From", "+15017122661"),
            ("To", "+15558675310"),
            ("MessageSid", message_id),
            ("SmsSid", message_id),
            ("MessageStatus", twilio_status),
            ("SmsStatus", twilio_status),
            ("MessagingServiceSid", "MG" + "0" * 32),
        ]
        if code:
            form.append(("ErrorCode", code))
        token = signatures.first_secret(self.credentials.auth_token)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(url, tuple(form), token),
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        return SampleRequest("POST", url, headers, urlencode(form).encode("utf-8"))

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("auth_token"): secrets.token_hex(16)}


def normalize(params: dict[str, str]) -> pb.DeliveryReport:
    """One callback's parameters → a report (provider-level fields are stamped later).

    Twilio sends no event time (``RawDlrDoneDate`` is the carrier's local time with an
    unknown offset, kept in ``raw``), so statusd orders Twilio reports by rank and arrival.
    Only MessageSid and MessageStatus are required; an unreadable ``To`` (not a possible
    number) or ``From`` is left out.
    """
    sid = required(params.get("MessageSid") or params.get("SmsSid"), "MessageSid", limit=128)
    status_text = params.get("MessageStatus") or params.get("SmsStatus")
    raw_status = required(status_text, "MessageStatus", limit=64)
    if raw_status.lower() in INBOUND:
        raise InvalidItem(f"MessageStatus {raw_status!r} is an inbound message, not a report")
    status = STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN)
    report = pb.DeliveryReport(
        message_id=sid,
        provider_status=raw_status,
        recipient=recipient(params.get("To"), "To"),
        sender=lenient("sender", "", text, params.get("From"), "From", limit=64),
        batch_id=lenient(
            "batch_id", "", text, params.get("MessagingServiceSid"), "MessagingServiceSid", limit=64
        ),
        raw=raw_json(params),
    )
    report.status = status
    code = text(params.get("ErrorCode"), "ErrorCode", limit=16).strip()
    if code and code != "0":
        apply_error_code(report, code, ERROR_CODES)
    return report


def _algorithm(settings: str | None) -> str:
    """The ``algorithm=`` of a signature-settings header; HMAC_SHA1 when absent."""
    for part in (settings or "").split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def url_variants(url: str) -> list[str]:
    """The URL as received, without its port, and with the scheme's default port added."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    default = DEFAULT_PORTS.get(parts.scheme, 443)
    without = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    port = parts.port if parts.port is not None else default
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    return list(dict.fromkeys([url, without, with_port]))


def signed_order(form: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's pairs in the order the signature joins them: sorted by name, the values of a
    repeated name sorted, duplicate pairs dropped."""
    return sorted(set(form))


def joined(signed: Iterable[tuple[str, str]]) -> str:
    """Pairs in their signed order as the signature joins them: name, value, name, ..."""
    return "".join(chain.from_iterable(signed))


def signing_string(url: str, form: Iterable[tuple[str, str]]) -> str:
    """What the signature covers: the URL, then each parameter name and value, sorted."""
    return url + joined(signed_order(form))


def event_id(url: str, form: tuple[tuple[str, str], ...]) -> str:
    """The dedupe key of a callback: a digest of the string its signature covers, so a resend
    of the same callback is a duplicate whatever unsigned headers it carries."""
    digest = signatures.sha256_hex(signing_string(url, form).encode("utf-8", "surrogatepass"))
    return EVENT_ID_PREFIX + digest


def signature_of(signed_string: str, key: bytes, algorithm: str = "sha1") -> str:
    """The signature of a :func:`signing_string` under ``key``."""
    return signatures.hmac_b64(key, signed_string.encode("utf-8"), algorithm)


def sign(url: str, form: tuple[tuple[str, str], ...], token: str) -> str:
    """An ``X-Twilio-Signature`` value (for tests and ``dlrhub send-sample``)."""
    return signature_of(signing_string(url, form), token.encode("utf-8"))


def sign_json(url: str, body: bytes, token: str) -> tuple[str, str]:
    """The URL with ``bodySHA256`` added and its signature, for a JSON body."""
    separator = "&" if urlsplit(url).query else "?"
    signed_url = f"{url}{separator}bodySHA256={signatures.sha256_hex(body)}"
    return signed_url, sign(signed_url, (), token)

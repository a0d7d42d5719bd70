"""Plivo message status callbacks: one form POST (or GET with query parameters) per status.

Authenticity: the ``X-Plivo-Signature-V3`` family signs method, the URL Plivo called, every
parameter sorted, and a nonce; the header may carry several comma-separated signatures. When a
V3 header (a signature or its nonce) is present, V3 alone judges the request: there is no
fallback to V2, which would be a downgrade. V2 (``X-Plivo-Signature-V2``: URL without query +
nonce, the parameters unsigned) is refused unless ``DLRHUB_PLIVO_ALLOW_V2`` is on, and then
accepted only when no V3 header is present; every nonce a request carries is recorded against
replays (gateway/guard.py). V3 signs parameters as ``k=v&k=v`` (the query) and as name +
value concatenated (the form), so parameters that could be re-split are refused
(gateway/auth/canonical.py). The ``-Ma-`` variants are signed with the main account's token,
so configure it beside a subaccount's. See docs/providers/plivo.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    json_item,
    raw_json,
)
from gateway.providers.credentials import Credentials
from gateway.providers.fields import (
    ErrorCodes,
    apply_error_code,
    decimal_text,
    first_time,
    iso_time,
    lenient,
    recipient,
    required,
    set_time,
    text,
    whole_number,
)

STATUSES: dict[str, pb.DeliveryStatus.ValueType] = {
    "queued": pb.DELIVERY_STATUS_QUEUED,
    "sent": pb.DELIVERY_STATUS_SENT,  # handed to a downstream carrier
    "delivered": pb.DELIVERY_STATUS_DELIVERED,
    "read": pb.DELIVERY_STATUS_DELIVERED,  # WhatsApp read receipt: delivered, and then some
    "undelivered": pb.DELIVERY_STATUS_UNDELIVERED,
    "failed": pb.DELIVERY_STATUS_FAILED,  # Plivo-internal error before hand-off
    "rejected": pb.DELIVERY_STATUS_REJECTED,  # listed by older docs
}
#: Plivo error codes: (description, permanent or None when Plivo does not say, the canonical
#: status a failure with this code gets, or None to keep the status Plivo sent).
ERROR_CODES: ErrorCodes = {
    "10": ("Invalid message", True, pb.DELIVERY_STATUS_REJECTED),
    "20": ("Network error", False, None),
    "30": ("Spam detected", True, pb.DELIVERY_STATUS_REJECTED),
    "40": ("Invalid source number", True, pb.DELIVERY_STATUS_REJECTED),
    "50": ("Invalid destination number", True, pb.DELIVERY_STATUS_REJECTED),
    "60": ("Loop detected", True, pb.DELIVERY_STATUS_REJECTED),
    "70": ("Destination permanently unavailable", True, pb.DELIVERY_STATUS_REJECTED),
    "80": ("Destination temporarily unavailable", False, None),
    "90": ("No route available", None, pb.DELIVERY_STATUS_FAILED),
    "100": ("Prohibited by carrier", True, pb.DELIVERY_STATUS_REJECTED),
    "110": ("Message too long", True, pb.DELIVERY_STATUS_REJECTED),
    "200": ("Source number blocked by STOP from destination", True, pb.DELIVERY_STATUS_REJECTED),
    "201": ("US toll-free to Canadian destination blocked", True, pb.DELIVERY_STATUS_REJECTED),
    "900": ("Insufficient credit", None, pb.DELIVERY_STATUS_FAILED),
    "1000": ("Unknown error", None, None),
}
#: Codes that mean "no error" (Plivo sends ErrorCode empty, or 000 once delivered).
NO_ERROR = frozenset({"", "0", "000"})
#: Which time field tells when each status happened.
EVENT_TIME_FIELDS = {
    "queued": "QueuedTime",
    "sent": "SentTime",
    "delivered": "DeliveryReportTime",
    "undelivered": "DeliveryReportTime",
    "read": "DeliveryReportTime",
    "failed": "DeliveryReportTime",
    "rejected": "DeliveryReportTime",
}
#: Plivo statuses and sequence numbers for ``dlrhub send-sample``.
SAMPLE_STATUSES = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "rejected": "rejected",
}
SAMPLE_SEQUENCE = {"queued": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 2}
V3_HEADERS = ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3")
V2_HEADERS = ("X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2")
V3_NONCE = "X-Plivo-Signature-V3-Nonce"
V2_NONCE = "X-Plivo-Signature-V2-Nonce"
#: The parameters dlrhub reads: no re-split of the signed string may touch them.
DECISIVE = frozenset(
    {
        "MessageUUID",
        "ParentMessageUUID",
        "Status",
        "ErrorCode",
        "Sequence",
        "PartInfo",
        "SentTime",
        "QueuedTime",
        "DeliveryReportTime",
    }
)
#: Every parameter Plivo documents for status callbacks.
PARAMETERS = DECISIVE | {
    "From",
    "To",
    "Type",
    "Units",
    "TotalRate",
    "TotalAmount",
    "MCC",
    "MNC",
    "PowerpackUUID",
}


class PlivoCredentials(Credentials):
    """Plivo credentials."""

    auth_token: Secrets = Field(
        (), description="Auth tokens (the subaccount's and, for -Ma- signatures, the main one)."
    )
    allow_v2: bool = Field(
        False,
        description="Accept X-Plivo-Signature-V2, which signs the URL and a nonce but no "
        "parameter (weaker: replays with other parameters are caught only by this process).",
    )


class Plivo(Provider):
    name = "plivo"
    methods = frozenset({"POST", "GET"})
    credentials: PlivoCredentials

    def verify(self, request: InboundRequest) -> str:
        tokens = signatures.secret_values(self.credentials.auth_token)
        if any(request.header(name) for name in (*V3_HEADERS, V3_NONCE)):
            nonce = self.required_header(request, V3_NONCE)
            form = sorted(request.form)  # as signed: sorted, whatever order the body has
            problem = ambiguity(request, form)
            if problem:
                raise self.unauthenticated(problem)
            message = v3_string(request.method, request.url, form) + "." + nonce
            if signatures.hmac_matches(tokens, message.encode(), _signatures(request, V3_HEADERS)):
                return "plivo_v3"
            raise self.unauthenticated("X-Plivo-Signature-V3 does not match")
        if any(request.header(name) for name in V2_HEADERS):
            if not self.credentials.allow_v2:
                raise self.unauthenticated(
                    "X-Plivo-Signature-V2 signs no parameter and is off (DLRHUB_PLIVO_ALLOW_V2)"
                )
            nonce = self.required_header(request, V2_NONCE)
            message_v2 = (_base_url(request.url) + nonce).encode("utf-8")
            if signatures.hmac_matches(tokens, message_v2, _signatures(request, V2_HEADERS)):
                return "plivo_v2"
            raise self.unauthenticated("X-Plivo-Signature-V2 does not match")
        raise self.unauthenticated("no X-Plivo-Signature-V3 or -V2 header", label="missing")

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        return normalize(json_item(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        plivo_status = SAMPLE_STATUSES.get(status, "delivered")
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        form = (
            ("MessageUUID", message_id),
            ("Status", plivo_status),
            ("To", "14155551234"),
            ("From", "14155550000"),
            ("Type", "sms"),
            ("Units", "1"),
            ("TotalRate", "0.00350"),
            ("TotalAmount", "0.00350"),
            ("MCC", "310"),
            ("MNC", "260"),
            ("ErrorCode", "" if plivo_status in ("delivered", "sent", "queued") else "80"),
            ("ParentMessageUUID", message_id),
            ("PartInfo", "1 of 1"),
            ("Sequence", str(SAMPLE_SEQUENCE.get(plivo_status, 1))),
            ("SentTime", now),
            ("DeliveryReportTime", now),
        )
        nonce = secrets.token_hex(10)
        token = signatures.first_secret(self.credentials.auth_token)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": sign_v3("POST", url, form, nonce, token),
        }
        return SampleRequest("POST", url, headers, urlencode(form).encode("utf-8"))

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {cls.env("auth_token"): secrets.token_urlsafe(24)}

    def nonces(self, request: InboundRequest) -> tuple[str, ...]:
        # The V3 nonce when V3 judged the request; every V2 nonce when V2 is allowed, so a
        # captured V3 request stripped to its V2 headers is a replay too.
        v3 = request.header(V3_NONCE) or ""
        if not self.credentials.allow_v2:
            return (v3,) if v3 else ()
        return tuple(dict.fromkeys(nonce for nonce in (v3, request.header(V2_NONCE)) if nonce))

    def parse(self, request: InboundRequest) -> Parsed:
        if request.method == "POST":
            self.require_content_type(request, "application/x-www-form-urlencoded")
        params = request.params()
        if not params.get("MessageUUID"):
            raise Malformed("MessageUUID is missing")
        return Parsed.of(params, normalize)


def normalize(params: dict[str, Any]) -> pb.DeliveryReport:
    """One callback's parameters → a report (provider-level fields are stamped later). Only
    MessageUUID and Status are required; an unreadable informational field is left out."""
    if not isinstance(params, dict):
        raise InvalidItem("callback parameters are not an object")
    uuid = required(params.get("MessageUUID"), "MessageUUID", limit=128)
    raw_status = required(params.get("Status"), "Status", limit=64)
    status = STATUSES.get(raw_status.lower(), pb.DELIVERY_STATUS_UNKNOWN)
    report = pb.DeliveryReport(
        message_id=uuid,
        provider_status=raw_status,
        recipient=recipient(params.get("To"), "To"),
        sender=lenient("sender", "", text, params.get("From"), "From", limit=64),
        segments=lenient("segments", 0, whole_number, params.get("Units"), "Units"),
        sequence=lenient("sequence", 0, whole_number, params.get("Sequence"), "Sequence"),
        raw=raw_json(params),
    )
    report.mcc, report.mnc = lenient("mcc_mnc", ("", ""), _network, params)
    report.price.amount = lenient(
        "price", "", decimal_text, params.get("TotalAmount"), "TotalAmount"
    )
    report.price.unit_amount = lenient(
        "price", "", decimal_text, params.get("TotalRate"), "TotalRate"
    )
    parent = text(params.get("ParentMessageUUID"), "ParentMessageUUID", limit=128).strip()
    if parent and parent != uuid:
        report.parent_message_id = parent
    report.part_index, report.part_count = _part_info(params.get("PartInfo"))
    report.status = status
    code = text(params.get("ErrorCode"), "ErrorCode", limit=16).strip()
    if code not in NO_ERROR:
        apply_error_code(report, code, ERROR_CODES)
    set_time(report.sent_time, _time(params, "SentTime", "sent_time"))
    set_time(report.event_time, event_time(params, raw_status))
    return report


def _network(params: dict[str, Any]) -> tuple[str, str]:
    return text(params.get("MCC"), "MCC", limit=8), text(params.get("MNC"), "MNC", limit=8)


def _time(params: dict[str, Any], name: str, field_class: str = "event_time") -> datetime | None:
    """A Plivo time (``YYYY-mm-dd HH:MM:SS.ffffff``, no zone: UTC), or None (left out)."""
    return lenient(field_class, None, iso_time, params.get(name), name, naive_is_utc=True)


def event_time(params: dict[str, Any], raw_status: str) -> datetime | None:
    """The status's own time (``EVENT_TIME_FIELDS``: DeliveryReportTime for outcomes,
    SentTime for sent, QueuedTime for queued), else ``MessageTime``; None (the receive time
    stands for it) for a status without one or when none is readable."""
    own = EVENT_TIME_FIELDS.get(raw_status.lower())
    if not own:
        return None
    return first_time(_time(params, own), _time(params, "MessageTime"))


def _part_info(value: Any) -> tuple[int, int]:
    """``"1 of 2"`` → (1, 2); absent or unreadable → (0, 0) (Plivo calls it reserved)."""
    words = str(value or "").split()
    if len(words) == 3 and words[1] == "of" and words[0].isdigit() and words[2].isdigit():
        index, count = int(words[0]), int(words[2])
        if 0 < index <= count < 256:
            return index, count
    return 0, 0


def ambiguity(request: InboundRequest, form: list[tuple[str, str]]) -> str:
    """Why the V3 string of the request could also be built from other parameters, or ``""``:
    ``&`` or ``=`` in a query name or ``&`` in a query value (joined as ``k=v&k=v``), or a form
    that could be re-split (name and value concatenated in the signed order,
    :func:`canonical.concatenation_problem`). ``form``: the request's form sorted, as signed.
    """
    query = request.query  # the URL's query, parsed with blank values kept
    problem = canonical.separators_in(query, "&=", "&") if query else ""
    if problem or request.method != "POST":
        return problem
    prefix = "&".join([f"{key}={value}" for key, value in query]) if query else ""
    return canonical.concatenation_problem(prefix, form, DECISIVE, PARAMETERS)


def _signatures(request: InboundRequest, headers: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in headers:
        value = request.header(name) or ""
        found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


def _base_url(url: str) -> str:
    """``scheme://host/path`` of a URL: query and fragment dropped."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@lru_cache(maxsize=256)
def _url_parts(url: str) -> tuple[str, str]:
    """The base URL and the query as V3 signs it (pairs sorted by key, then value: Plivo's
    order). Remembered: callbacks come to a handful of URLs."""
    query = sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return _base_url(url), "&".join([f"{key}={value}" for key, value in query])


def v3_string(method: str, url: str, form: Sequence[tuple[str, str]]) -> str:
    """What Plivo's V3 signature covers, without the trailing ``.nonce``.

    GET: the URL's parameters (Plivo's callback parameters among them), sorted by key and then
    value, as ``base?k=v&k=v``. POST: the URL's own query sorted the same way, then (when both
    exist) ``.``, then the form parameters sorted, each as ``key`` + ``value`` with no separator.
    Values are compared decoded, as Plivo signs them.
    """
    base, query_text = _url_parts(url)
    if method == "GET" or not form:
        return f"{base}?{query_text}" if query_text else base
    params_text = "".join(chain.from_iterable(sorted(form)))
    return f"{base}?{query_text}" + ("." if query_text else "") + params_text


def sign_v3(
    method: str, url: str, form: tuple[tuple[str, str], ...], nonce: str, token: str
) -> str:
    """An ``X-Plivo-Signature-V3`` value (for tests and ``dlrhub send-sample``)."""
    message = v3_string(method, url, form) + "." + nonce
    return signatures.hmac_b64(token.encode("utf-8"), message.encode("utf-8"))


def sign_v2(url: str, nonce: str, token: str) -> str:
    """An ``X-Plivo-Signature-V2`` value."""
    return signatures.hmac_b64(token.encode("utf-8"), (_base_url(url) + nonce).encode("utf-8"))

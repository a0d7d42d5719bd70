"""Infobip SMS delivery reports: ``POST {"results": [...]}``, several reports per request.

Authenticity: Infobip documents no payload signature for SMS reports. It offers HTTP Basic
credentials on the notify URL (Subscriptions security type BASIC), which is the recommended
method; we also accept a secret URL token (``?token=...``) and an HMAC-SHA256 of the raw body
in a configurable header (lower-case hex, optional ``sha256=`` prefix). Configured methods
are alternatives: a request must pass at least one. See docs/providers/infobip.md.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    json_item,
    raw_json,
)
from gateway.providers.credentials import Credentials
from gateway.providers.fields import (
    iso_time,
    lenient,
    message_id,
    network_code,
    recipient,
    set_price,
    set_time,
    text,
    whole_number,
)

# Status mapping. Infobip's groupName is stable; the status name refines it. An unknown
# name falls back to its group, so new Infobip statuses never become errors.
GROUPS: dict[str, pb.DeliveryStatus.ValueType] = {
    "ACCEPTED": pb.DELIVERY_STATUS_ACCEPTED,
    # judgment: an unknown PENDING status is still at Infobip, not yet confirmed at a carrier
    "PENDING": pb.DELIVERY_STATUS_QUEUED,
    "UNDELIVERABLE": pb.DELIVERY_STATUS_UNDELIVERED,
    "DELIVERED": pb.DELIVERY_STATUS_DELIVERED,
    "EXPIRED": pb.DELIVERY_STATUS_EXPIRED,
    "REJECTED": pb.DELIVERY_STATUS_REJECTED,
}
#: Documented group ids, for reports that carry the id without the name.
GROUP_IDS: dict[int, str] = {
    1: "PENDING",
    2: "UNDELIVERABLE",
    3: "DELIVERED",
    4: "EXPIRED",
    5: "REJECTED",
}
STATUS_NAMES: dict[str, pb.DeliveryStatus.ValueType] = {
    "PENDING_ACCEPTED": pb.DELIVERY_STATUS_ACCEPTED,
    "PENDING_ENROUTE": pb.DELIVERY_STATUS_SENT,
    "PENDING_WAITING_DELIVERY": pb.DELIVERY_STATUS_SENT,
    "DELIVERED_TO_HANDSET": pb.DELIVERY_STATUS_DELIVERED,
    # judgment: the operator accepted it but no handset receipt exists; the raw name is kept
    "DELIVERED_TO_OPERATOR": pb.DELIVERY_STATUS_SENT,
    # judgment: the operator refused after hand-off, which is non-delivery, not policy
    "UNDELIVERABLE_REJECTED_OPERATOR": pb.DELIVERY_STATUS_UNDELIVERED,
    "UNDELIVERABLE_NOT_DELIVERED": pb.DELIVERY_STATUS_UNDELIVERED,
    "EXPIRED_EXPIRED": pb.DELIVERY_STATUS_EXPIRED,
    # judgment: sent, but no receipt came before validity ended: a final word that says nothing
    "EXPIRED_DLR_UNKNOWN": pb.DELIVERY_STATUS_UNKNOWN,
    # judgment: provider-side failures, not policy refusals
    "REJECTED_NOT_ENOUGH_CREDITS": pb.DELIVERY_STATUS_FAILED,
    "REJECTED_SYSTEM_ERROR": pb.DELIVERY_STATUS_FAILED,
}
#: Documented status ids, for reports that carry the id without the name.
STATUS_IDS: dict[int, str] = {
    26: "PENDING_ACCEPTED",
    7: "PENDING_ENROUTE",
    3: "PENDING_WAITING_DELIVERY",
    5: "DELIVERED_TO_HANDSET",
    2: "DELIVERED_TO_OPERATOR",
    4: "UNDELIVERABLE_REJECTED_OPERATOR",
    9: "UNDELIVERABLE_NOT_DELIVERED",
    15: "EXPIRED_EXPIRED",
    29: "EXPIRED_DLR_UNKNOWN",
}
#: Error names that mean "no error".
NO_ERROR = frozenset({"", "NO_ERROR", "OK"})


class InfobipCredentials(Credentials):
    """Infobip credentials; any one configured method must pass."""

    basic_auth: BasicPairs = Field((), description="HTTP Basic `user:password` pairs.")
    hmac_secret: Secrets = Field((), description="Keys for the HMAC-SHA256 body signature.")
    hmac_header: str = Field("X-Infobip-Signature", description="Header of the HMAC signature.")
    url_token: Secrets = Field((), description="Secret tokens accepted in `?token=`.")


class Infobip(Provider):
    name = "infobip"
    credentials: InfobipCredentials

    def verify(self, request: InboundRequest) -> str:
        creds = self.credentials
        presented = False  # whether the request carried any credential at all
        passed = ""
        if creds.basic_auth and request.header("authorization"):
            presented = True
            try:
                basic.check(request.header("authorization"), creds.basic_auth)
                passed = "basic"
            except Unauthenticated:
                pass  # a failed credential: another configured method may still pass
        if creds.hmac_secret and request.header(creds.hmac_header):
            presented = True
            header = (request.header(creds.hmac_header) or "").strip().lower()
            keys = signatures.secret_values(creds.hmac_secret)
            given = [header.removeprefix("sha256=")]
            if signatures.hmac_matches(keys, request.body, given, encoding="hex"):
                passed = passed or "hmac"
        tokens = [value for key, value in request.query if key == "token"]
        if creds.url_token and tokens:
            presented = True
            expected = [secret.get_secret_value() for secret in creds.url_token]
            if signatures.any_equal(expected, tokens):
                passed = passed or "url_token"
        if passed:
            return passed
        if presented:
            raise self.unauthenticated("credentials do not match")
        raise self.unauthenticated("no credentials in the request", label="missing")

    def parse_item(self, raw: str) -> pb.DeliveryReport:
        return normalize(json_item(raw))

    def sample(self, url: str, message_id: str, status: str) -> SampleRequest:
        group_id, group, status_id, name = SAMPLE_STATUSES.get(status, SAMPLE_STATUSES["delivered"])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        item = {
            "bulkId": "sample-bulk",
            "messageId": message_id,
            "to": "41793026727",
            "sender": "dlrhub",
            "sentAt": now,
            "doneAt": now,
            "messageCount": 1,
            "mccMnc": "22801",
            "callbackData": "sample",
            "price": {"pricePerMessage": 0.01, "currency": "EUR"},
            "status": {"groupId": group_id, "groupName": group, "id": status_id, "name": name},
            "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR"},
        }
        body = raw_json({"results": [item]}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        creds = self.credentials
        if creds.basic_auth:
            headers["Authorization"] = basic.authorization(
                signatures.first_secret(creds.basic_auth)
            )
        if creds.hmac_secret:
            headers[creds.hmac_header] = sign(body, signatures.first_secret(creds.hmac_secret))
        if creds.url_token:
            token = quote(signatures.first_secret(creds.url_token), safe="")
            url += ("&" if "?" in url else "?") + f"token={token}"
        return SampleRequest("POST", url, headers, body)

    def parse(self, request: InboundRequest) -> Parsed:
        self.require_content_type(request, "application/json")
        body = json_body(request)
        if not isinstance(body, dict) or "results" not in body:
            raise Malformed('body must be a JSON object with a "results" array')
        results = body["results"]
        if not isinstance(results, list) or not results:
            raise Malformed('"results" must be a non-empty array')
        self.check_items(len(results))
        return Parsed.of_each(results, normalize)

    @classmethod
    def dev_credentials(cls, directory: Path) -> dict[str, str]:
        return {
            cls.env("basic_auth"): f"dev:{secrets.token_urlsafe(18)}",
            cls.env("hmac_secret"): secrets.token_urlsafe(24),
        }


#: Infobip status objects for ``dlrhub send-sample``: (groupId, groupName, id, name).
SAMPLE_STATUSES: dict[str, tuple[int, str, int, str]] = {
    "accepted": (1, "PENDING", 26, "PENDING_ACCEPTED"),
    "sent": (1, "PENDING", 7, "PENDING_ENROUTE"),
    "delivered": (3, "DELIVERED", 5, "DELIVERED_TO_HANDSET"),
    "undelivered": (2, "UNDELIVERABLE", 9, "UNDELIVERABLE_NOT_DELIVERED"),
    "expired": (4, "EXPIRED", 15, "EXPIRED_EXPIRED"),
    "rejected": (5, "REJECTED", 6, "REJECTED_NETWORK"),
    "failed": (5, "REJECTED", 20, "REJECTED_SYSTEM_ERROR"),
    "unknown": (4, "EXPIRED", 29, "EXPIRED_DLR_UNKNOWN"),
}


def normalize(item: Any) -> pb.DeliveryReport:
    """One ``results[]`` item → a report (provider-level fields are stamped later). Only the
    message id and the status are required; an unreadable informational field is left out.
    The event time is ``doneAt`` (ISO 8601 with an offset, ``+0000`` without a colon); without
    a readable one, the receive time stands for it (``sentAt`` is when it was sent)."""
    if not isinstance(item, dict):
        raise InvalidItem("result item is not a JSON object")
    status = item.get("status")
    if not isinstance(status, dict):
        raise InvalidItem("status is missing or not an object")
    report = pb.DeliveryReport(
        message_id=message_id(item.get("messageId"), "messageId"),
        recipient=recipient(item.get("to"), "to"),
        sender=lenient(
            "sender", "", text, item.get("sender", item.get("from")), "sender", limit=64
        ),
        client_ref=lenient("client_ref", "", text, item.get("callbackData"), "callbackData"),
        batch_id=lenient("batch_id", "", text, item.get("bulkId"), "bulkId", limit=256),
        segments=lenient(
            "segments",
            0,
            whole_number,
            item.get("messageCount", item.get("smsCount")),
            "messageCount",
        ),
        raw=raw_json(item),
    )
    report.status, report.provider_status, report.provider_status_group = _status(status)
    lenient("error_text", None, _set_error, report, item.get("error"))
    lenient("price", None, set_price, report, item.get("price"), "price", "pricePerMessage")
    report.mcc, report.mnc = lenient(
        "mcc_mnc", ("", ""), network_code, item.get("mccMnc"), "mccMnc"
    )
    set_time(report.sent_time, lenient("sent_time", None, iso_time, item.get("sentAt"), "sentAt"))
    set_time(report.event_time, lenient("event_time", None, iso_time, item.get("doneAt"), "doneAt"))
    return report


def _status(status: dict[str, Any]) -> tuple[pb.DeliveryStatus.ValueType, str, str]:
    name = text(status.get("name"), "status.name", limit=128)
    status_id = status.get("id")
    if not name and isinstance(status_id, int):
        name = STATUS_IDS.get(status_id, str(status_id))
    group = text(status.get("groupName"), "status.groupName", limit=128)
    group_id = status.get("groupId")
    if not group and isinstance(group_id, int):
        group = GROUP_IDS.get(group_id, "")
    if not name and not group:
        raise InvalidItem("status has neither a name nor a group")
    canonical = STATUS_NAMES.get(name.upper()) or GROUPS.get(
        group.upper(), pb.DELIVERY_STATUS_UNKNOWN
    )
    return canonical, name or group, group


def _set_error(report: pb.DeliveryReport, error: Any) -> None:
    """The error object, set only when all of it reads (else it is left out whole)."""
    if error is None:
        return
    if not isinstance(error, dict):
        raise InvalidItem("error is not an object")
    name = text(error.get("name"), "error.name", limit=128)
    code = text(error.get("id"), "error.id", limit=32)
    if name.upper() in NO_ERROR and code in ("", "0"):
        return
    description = text(error.get("description"), "error.description")
    group = text(error.get("groupName"), "error.groupName", limit=128)
    report.error.code, report.error.name = code, name
    report.error.description, report.error.group = description, group
    permanent = error.get("permanent")
    if isinstance(permanent, bool):
        report.error.permanent = permanent


def sign(body: bytes, secret: str) -> str:
    """The ``X-Infobip-Signature`` value for ``body`` (for tests and ``dlrhub send-sample``)."""
    return signatures.hmac_hex(secret.encode("utf-8"), body)

"""Pre-generated, correctly signed webhook requests for wrk (signing stays out of the loop).

One file per scenario, one request per line, tab-separated: request id, method, path,
``header=value;...``, body. Every request carries unique message ids, recorded beside it so
the run can be checked against the store afterwards.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from gateway.auth.basic import authorization as basic_authorization
from gateway.providers.plivo import sign_v3

BASIC = ("bench", "bench-secret")
PLIVO_TOKEN = "bench-plivo-token"
#: Credentials of the benchmarked gateway.
ENV = {
    "DLRHUB_INFOBIP_BASIC_AUTH": ":".join(BASIC),
    "DLRHUB_PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
}


def recipient(prefix: str, index: int) -> str:
    """A different possible number for each request (``prefix`` is a country and network
    code), as real traffic has many recipients: a cache of normalized numbers gets no hit
    the bench did not earn."""
    return f"{prefix}{index * 7919 % 10_000_000:07d}"


@dataclass(frozen=True)
class Request:
    request_id: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    message_ids: tuple[tuple[str, str], ...]  # (provider, message id)

    def line(self) -> str:
        headers = ";".join(f"{name}={value}" for name, value in self.headers.items())
        return "\t".join((self.request_id, self.method, self.path, headers, self.body))


def infobip(scenario: str, count: int, per_request: int) -> Iterator[Request]:
    headers = {
        "Content-Type": "application/json",
        "Authorization": basic_authorization(":".join(BASIC)),
    }
    for index in range(count):
        ids = [f"{scenario}-{index}-{item}" for item in range(per_request)]
        results = [
            {
                "messageId": message_id,
                "to": recipient("4179", index),
                "sentAt": "2026-03-01T10:00:00.000+0000",
                "doneAt": "2026-03-01T10:00:04.000+0000",
                "messageCount": 1,
                "mccMnc": "22801",
                "price": {"pricePerMessage": 0.01, "currency": "EUR"},
                "status": {
                    "groupId": 3,
                    "groupName": "DELIVERED",
                    "id": 5,
                    "name": "DELIVERED_TO_HANDSET",
                },
                "error": {
                    "groupId": 0,
                    "groupName": "OK",
                    "id": 0,
                    "name": "NO_ERROR",
                    "permanent": False,
                },
            }
            for message_id in ids
        ]
        yield Request(
            f"{scenario}-{index}",
            "POST",
            "/webhooks/infobip",
            headers,
            json.dumps({"results": results}, separators=(",", ":")),
            tuple(("infobip", message_id) for message_id in ids),
        )


def plivo(scenario: str, count: int, public_url: str) -> Iterator[Request]:
    for index in range(count):
        message_id = f"{scenario}-{index}"
        form = (
            ("MessageUUID", message_id),
            ("Status", "delivered"),
            ("To", recipient("1415", index)),
            ("From", "14155550000"),
            ("Units", "1"),
            ("TotalRate", "0.0035"),
            ("TotalAmount", "0.0035"),
            ("MCC", "310"),
            ("MNC", "260"),
            ("ErrorCode", ""),
            ("Sequence", "3"),
            ("DeliveryReportTime", "2026-03-01 10:00:04.000000"),
        )
        nonce = secrets.token_hex(10)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": sign_v3(
                "POST", public_url + "/webhooks/plivo", form, nonce, PLIVO_TOKEN
            ),
        }
        yield Request(
            message_id,
            "POST",
            "/webhooks/plivo",
            headers,
            urlencode(form),
            (("plivo", message_id),),
        )


def write(requests: Iterator[Request], path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Writes the requests file; returns request id → message ids."""
    index = {}
    with path.open("w", encoding="utf-8") as out:
        for request in requests:
            out.write(request.line() + "\n")
            index[request.request_id] = request.message_ids
    return index

"""The corpus of realistic samples under tests/data/providers/<provider>/: every sample is
signed with its provider's own signing helper, verified and parsed by the provider, and its
normalized reports are compared field by field with ``<sample>.expected.json``, which also
names the documentation the sample's shape comes from (``_source``).

Sample files are request bodies: ``.json`` as sent, ``.form`` an urlencoded POST body,
``.query`` the query string of a GET."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.status_names import status_label
from gateway.providers import infobip, messagebird, plivo, sinch, telnyx, twilio, vonage
from gateway.providers.base import InboundRequest, Provider
from tests.helpers.requests import inbound

DATA = Path(__file__).parents[2] / "data" / "providers"
URL = "https://dlr.example.com/webhooks/"
SECRET = "corpus-secret-" + "k" * 50
SEED = bytes(range(32))

Signed = tuple[Provider, InboundRequest]


def _twilio(raw: str) -> Signed:
    url = URL + "twilio"
    form = _pairs(raw)
    headers = {twilio.SIGNATURE_HEADER: twilio.sign(url, form, SECRET)}
    request = inbound(url, headers=headers, form=dict(form))
    return twilio.Twilio("", twilio.TwilioCredentials(auth_token=SECRET)), request


def _plivo(raw: str) -> Signed:
    url, nonce = URL + "plivo", "12345678901234567890"
    form = _pairs(raw)
    headers = {
        "X-Plivo-Signature-V3": plivo.sign_v3("POST", url, form, nonce, SECRET),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
    request = inbound(url, headers=headers, form=dict(form))
    return plivo.Plivo("", plivo.PlivoCredentials(auth_token=SECRET)), request


def _messagebird(raw: str) -> Signed:
    url = f"{URL}messagebird?{raw}"
    token = messagebird.sign(url, b"", SECRET, now=time.time())
    request = inbound(url, method="GET", headers={messagebird.JWT_HEADER: token})
    creds = messagebird.MessageBirdCredentials(signing_key=SECRET)
    return messagebird.MessageBird("", creds), request


def _vonage(raw: str) -> Signed:
    params = {**json.loads(raw), "timestamp": str(int(time.time())), "nonce": "corpus-1"}
    params["sig"] = vonage.sign(params, SECRET, "sha256")
    body = json.dumps(params).encode()
    request = inbound(URL + "vonage", body=body, content_type="application/json")
    creds = vonage.VonageCredentials(signature_secret=SECRET, signature_method="sha256")
    return vonage.Vonage("", creds), request


def _sinch(raw: str) -> Signed:
    body = raw.encode()
    headers = sinch.sign_now(body, SECRET)
    request = inbound(URL + "sinch", headers=headers, body=body, content_type="application/json")
    return sinch.Sinch("", sinch.SinchCredentials(webhook_secret=SECRET)), request


def _infobip(raw: str) -> Signed:
    body = raw.encode()
    headers = {"X-Infobip-Signature": infobip.sign(body, SECRET)}
    request = inbound(URL + "infobip", headers=headers, body=body, content_type="application/json")
    return infobip.Infobip("", infobip.InfobipCredentials(hmac_secret=SECRET)), request


def _telnyx(raw: str) -> Signed:
    body, stamp = raw.encode(), str(int(time.time()))
    headers = {
        "telnyx-signature-ed25519": telnyx.sign(body, stamp, SEED),
        "telnyx-timestamp": stamp,
    }
    request = inbound(URL + "telnyx", headers=headers, body=body, content_type="application/json")
    creds = telnyx.TelnyxCredentials(public_key=telnyx.public_key_of(SEED))
    return telnyx.Telnyx("", creds), request


SIGNERS: dict[str, Callable[[str], Signed]] = {
    "twilio": _twilio,
    "plivo": _plivo,
    "messagebird": _messagebird,
    "vonage": _vonage,
    "sinch": _sinch,
    "infobip": _infobip,
    "telnyx": _telnyx,
}


def _pairs(raw: str) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(raw.strip(), keep_blank_values=True))


#: Each field an expected report may name → how to read it from a normalized report.
FIELDS: dict[str, Callable[[pb.DeliveryReport], Any]] = {
    "message_id": lambda r: r.message_id,
    "status": lambda r: status_label(r.status),
    "provider_status": lambda r: r.provider_status,
    "final": lambda r: r.final,
    "error_code": lambda r: r.error.code,
    "error_permanent": lambda r: r.error.permanent if r.error.HasField("permanent") else None,
    "event_time": lambda r: r.event_time.ToJsonString() if r.HasField("event_time") else None,
    "recipient": lambda r: r.recipient,
    "sender": lambda r: r.sender,
    "client_ref": lambda r: r.client_ref,
    "batch_id": lambda r: r.batch_id,
    "mcc": lambda r: r.mcc,
    "mnc": lambda r: r.mnc,
    "price_amount": lambda r: r.price.amount,
    "price_currency": lambda r: r.price.currency,
    "segments": lambda r: r.segments,
}


def samples() -> list[Any]:
    found = []
    for path in sorted(DATA.glob("*/*")):
        if path.name.endswith(".expected.json"):
            continue
        found.append(pytest.param(path, id=f"{path.parent.name}/{path.stem}"))
    return found


def test_every_sample_has_an_expected_report_and_a_source() -> None:
    for path in DATA.glob("*/*"):
        if not path.name.endswith(".expected.json"):
            expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text())
            assert expected["_source"].strip(), path
            assert path.parent.name in SIGNERS, path


@pytest.mark.parametrize("path", samples())
def test_sample(path: Path) -> None:
    expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text())
    provider, request = SIGNERS[path.parent.name](path.read_text())
    parsed = provider.handle(request)
    assert [item.reason for item in parsed.quarantined] == []
    got = [
        {field: FIELDS[field](report) for field in want}
        for report, want in zip(parsed.reports, expected["reports"], strict=True)
    ]
    assert got == expected["reports"]

"""The corpus of realistic samples under tests/data/providers/<provider>/: every sample is
signed with its provider's own signing helper, verified and parsed by the provider, and its
normalized reports are compared field by field with ``<sample>.expected.json``, which also
names the documentation the sample's shape comes from (``_source``) and, for a provider
configured per deployment (Standard Webhooks' field and status maps), its ``_settings``.

Sample files are request bodies: ``.json`` as sent, ``.form`` an urlencoded POST body,
``.query`` the query string of a GET. The provider prepares the request as the gateway does
(AWS SNS fetches its signing certificate there, from a stand-in that serves the test
certificate only at the sample's own ``SigningCertURL``), then verifies and parses it."""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.status_names import status_label
from gateway.auth import sns_signature
from gateway.providers import (
    aws_sns,
    bird,
    infobip,
    messagebird,
    plivo,
    sinch,
    standard_webhooks,
    telnyx,
    twilio,
    vonage,
    vonage_messages,
)
from gateway.providers.base import InboundRequest, Provider
from tests.helpers.requests import inbound

DATA = Path(__file__).parents[2] / "data" / "providers"
URL = "https://dlr.example.com/webhooks/"
SECRET = "corpus-secret-" + "k" * 50
SEED = bytes(range(32))

Signed = tuple[Provider, InboundRequest]
Settings = dict[str, Any]


def _twilio(raw: str, settings: Settings) -> Signed:
    url = URL + "twilio"
    form = _pairs(raw)
    headers = {twilio.SIGNATURE_HEADER: twilio.sign(url, form, SECRET)}
    request = inbound(url, headers=headers, form=dict(form))
    return twilio.Twilio("", twilio.TwilioCredentials(auth_token=SECRET)), request


def _plivo(raw: str, settings: Settings) -> Signed:
    url, nonce = URL + "plivo", "12345678901234567890"
    form = _pairs(raw)
    headers = {
        "X-Plivo-Signature-V3": plivo.sign_v3("POST", url, form, nonce, SECRET),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
    request = inbound(url, headers=headers, form=dict(form))
    return plivo.Plivo("", plivo.PlivoCredentials(auth_token=SECRET)), request


def _messagebird(raw: str, settings: Settings) -> Signed:
    url = f"{URL}messagebird?{raw}"
    token = messagebird.sign(url, b"", SECRET, now=time.time())
    request = inbound(url, method="GET", headers={messagebird.JWT_HEADER: token})
    creds = messagebird.MessageBirdCredentials(signing_key=SECRET)
    return messagebird.MessageBird("", creds), request


def _vonage(raw: str, settings: Settings) -> Signed:
    params = {**json.loads(raw), "timestamp": str(int(time.time())), "nonce": "corpus-1"}
    params["sig"] = vonage.sign(params, SECRET, "sha256")
    body = json.dumps(params).encode()
    request = inbound(URL + "vonage", body=body, content_type="application/json")
    creds = vonage.VonageCredentials(signature_secret=SECRET, signature_method="sha256")
    return vonage.Vonage("", creds), request


def _sinch(raw: str, settings: Settings) -> Signed:
    body = raw.encode()
    headers = sinch.sign_now(body, SECRET)
    request = inbound(URL + "sinch", headers=headers, body=body, content_type="application/json")
    return sinch.Sinch("", sinch.SinchCredentials(webhook_secret=SECRET)), request


def _infobip(raw: str, settings: Settings) -> Signed:
    body = raw.encode()
    headers = {"X-Infobip-Signature": infobip.sign(body, SECRET)}
    request = inbound(URL + "infobip", headers=headers, body=body, content_type="application/json")
    return infobip.Infobip("", infobip.InfobipCredentials(hmac_secret=SECRET)), request


def _telnyx(raw: str, settings: Settings) -> Signed:
    body, stamp = raw.encode(), str(int(time.time()))
    headers = {
        "telnyx-signature-ed25519": telnyx.sign(body, stamp, SEED),
        "telnyx-timestamp": stamp,
    }
    request = inbound(URL + "telnyx", headers=headers, body=body, content_type="application/json")
    creds = telnyx.TelnyxCredentials(public_key=telnyx.public_key_of(SEED))
    return telnyx.Telnyx("", creds), request


def _bird(raw: str, settings: Settings) -> Signed:
    url, body, stamp = URL + "bird", raw.encode(), str(int(time.time()))
    headers = {bird.SIGNATURE: bird.sign(stamp, url, body, SECRET), bird.TIMESTAMP: stamp}
    request = inbound(url, headers=headers, body=body, content_type="application/json")
    return bird.Bird("", bird.BirdCredentials(signing_key=SECRET)), request


def _vonage_messages(raw: str, settings: Settings) -> Signed:
    body = raw.encode()
    token = vonage_messages.sign(body, SECRET, now=time.time())
    headers = {"Authorization": f"Bearer {token}"}
    url = URL + "vonage-messages"
    request = inbound(url, headers=headers, body=body, content_type="application/json")
    creds = vonage_messages.VonageMessagesCredentials(signature_secret=SECRET)
    return vonage_messages.VonageMessages("", creds), request


def _standard_webhooks(raw: str, settings: Settings) -> Signed:
    secret = "whsec_" + base64.b64encode(SECRET.encode()).decode()
    body, stamp, webhook_id = raw.encode(), str(int(time.time())), "msg_corpus"
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": standard_webhooks.sign(webhook_id, stamp, body, secret),
    }
    url = URL + "standard-webhooks"
    request = inbound(url, headers=headers, body=body, content_type="application/json")
    creds = standard_webhooks.StandardWebhooksCredentials(secret=secret, **settings)
    return standard_webhooks.StandardWebhooks("", creds), request


@functools.cache
def _sns_pair() -> tuple[bytes, bytes]:
    return sns_signature.signing_pair("sns.us-west-2.amazonaws.com (corpus)")


def _aws_sns(raw: str, settings: Settings) -> Signed:
    """The documented Notification, signed with the test key; the clock stands a minute after
    its Timestamp, and the certificate is served only at its SigningCertURL."""
    message = json.loads(raw)
    certificate, key = _sns_pair()
    message["Signature"] = sns_signature.sign(message, key)
    cert_url = message["SigningCertURL"]

    def fetch(url: str) -> bytes:
        if url != cert_url:
            raise OSError(f"no certificate at {url}")
        return certificate

    sent = datetime.fromisoformat(message["Timestamp"]).timestamp()
    creds = aws_sns.AwsSnsCredentials(topic_arns=message["TopicArn"])
    provider = aws_sns.AwsSns("", creds, clock=lambda: sent + 60, fetch=fetch)
    headers = {"x-amz-sns-message-type": message["Type"]}
    body = json.dumps(message).encode()
    request = inbound(URL + "aws-sns", headers=headers, body=body, content_type="text/plain")
    return provider, request


SIGNERS: dict[str, Callable[[str, Settings], Signed]] = {
    "twilio": _twilio,
    "plivo": _plivo,
    "messagebird": _messagebird,
    "vonage": _vonage,
    "sinch": _sinch,
    "infobip": _infobip,
    "telnyx": _telnyx,
    "bird": _bird,
    "vonage-messages": _vonage_messages,
    "standard-webhooks": _standard_webhooks,
    "aws-sns": _aws_sns,
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
    "error_name": lambda r: r.error.name,
    "error_description": lambda r: r.error.description,
    "error_group": lambda r: r.error.group,
    "error_permanent": lambda r: r.error.permanent if r.error.HasField("permanent") else None,
    "event_time": lambda r: r.event_time.ToJsonString() if r.HasField("event_time") else None,
    "sent_time": lambda r: r.sent_time.ToJsonString() if r.HasField("sent_time") else None,
    "recipient": lambda r: r.recipient,
    "sender": lambda r: r.sender,
    "client_ref": lambda r: r.client_ref,
    "batch_id": lambda r: r.batch_id,
    "mcc": lambda r: r.mcc,
    "mnc": lambda r: r.mnc,
    "price_amount": lambda r: r.price.amount,
    "price_currency": lambda r: r.price.currency,
    "segments": lambda r: r.segments,
    "event_id": lambda r: r.event_id,
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


def signed_sample(path: Path) -> tuple[Provider, InboundRequest, dict[str, Any]]:
    """The sample as its provider would send it, the provider to receive it, and what the
    sample must become."""
    expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text())
    signer = SIGNERS[path.parent.name]
    provider, request = signer(path.read_text(), expected.get("_settings", {}))
    return provider, request, expected


@pytest.mark.parametrize("path", samples())
async def test_sample(path: Path) -> None:
    provider, request, expected = signed_sample(path)
    await provider.prepare(request)  # the gateway's order: prepare, then verify and parse
    parsed = provider.handle(request)
    assert [item.reason for item in parsed.quarantined] == []
    got = [
        {field: FIELDS[field](report) for field in want}
        for report, want in zip(parsed.reports, expected["reports"], strict=True)
    ]
    assert got == expected["reports"]

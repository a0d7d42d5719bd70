"""Forgeries that keep a valid signature, each sent over real HTTP to a running gateway and
statusd: a Plivo V3 request stripped to its V2 headers, a Twilio callback replayed with fresh
idempotency tokens, and parameters re-split so the signed string stays the same (Vonage with
every signature method, Twilio, Plivo V3). docs/security.md names these tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.providers import plivo, twilio, vonage
from tests.gateway.conftest import ENV, PUBLIC_URL, Stack, StackFactory
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

ALLOW_V2 = {"DLRHUB_PLIVO_ALLOW_V2": "true"}
FORM = "application/x-www-form-urlencoded"


async def current(stack: Stack, provider: str, message_id: str) -> pb.MessageStatus:
    status = await stack.statusd.store.get(pb.MessageKey(provider=provider, message_id=message_id))
    assert status is not None
    return status


# -- Plivo V2 -----------------------------------------------------------------------------

PLIVO_URL = PUBLIC_URL + "/webhooks/plivo"
GENUINE = {"MessageUUID": "p-9", "Status": "undelivered", "ErrorCode": "80", "Sequence": "3"}


def plivo_request(form: dict[str, str], nonce: str, *, v3: bool = True) -> dict[str, Any]:
    """A callback as Plivo signs it: V3 (unless ``v3`` is false) and V2 headers."""
    headers = {
        "Content-Type": FORM,
        "X-Plivo-Signature-V2": plivo.sign_v2(PLIVO_URL, nonce + "-v2", "plivo-token"),
        "X-Plivo-Signature-V2-Nonce": nonce + "-v2",
    }
    if v3:
        pairs = tuple(form.items())
        headers["X-Plivo-Signature-V3"] = plivo.sign_v3(
            "POST", PLIVO_URL, pairs, nonce, "plivo-token"
        )
        headers["X-Plivo-Signature-V3-Nonce"] = nonce
    return {"content": urlencode(form), "headers": headers}


def stripped_and_rewritten(captured: dict[str, Any]) -> dict[str, Any]:
    """The captured request without its V3 headers, its form saying ``delivered`` with a
    sequence that would outrank every genuine report."""
    headers = {name: value for name, value in captured["headers"].items() if "V3" not in name}
    forged = {**GENUINE, "Status": "delivered", "ErrorCode": "", "Sequence": "9" * 18}
    return {"content": urlencode(forged), "headers": headers}


@pytest.mark.parametrize(
    ("env", "reason"),
    [({}, "DLRHUB_PLIVO_ALLOW_V2"), (ALLOW_V2, "already accepted on another request")],
    ids=["v2 off (the default): refused", "v2 allowed: the V2 nonce was recorded"],
)
async def test_plivo_v3_request_stripped_to_v2_and_rewritten_is_refused(
    make_stack: StackFactory, env: dict[str, str], reason: str
) -> None:
    async with make_stack(env=env) as stack:
        captured = plivo_request(GENUINE, "n-1")
        assert (await stack.http.post("/webhooks/plivo", **captured)).json()["stored"] == 1
        forged = await stack.http.post("/webhooks/plivo", **stripped_and_rewritten(captured))
        assert forged.status_code == 401
        assert reason in forged.json()["reason"]
        status = await current(stack, "plivo", "p-9")
        assert (status.status, status.report_count) == (pb.DELIVERY_STATUS_UNDELIVERED, 1)


async def test_plivo_nonce_on_another_request_is_refused_after_acceptance(
    make_stack: StackFactory,
) -> None:
    async with make_stack(env=ALLOW_V2) as stack:
        form = {"MessageUUID": "p-1", "Status": "delivered", "ErrorCode": ""}
        accepted = await stack.http.post("/webhooks/plivo", **plivo_request(form, "1", v3=False))
        assert accepted.json()["stored"] == 1
        # The captured V2 signature still verifies with other parameters: the nonce refuses it.
        forged = {"MessageUUID": "p-1", "Status": "failed", "ErrorCode": "200"}
        replayed = await stack.http.post("/webhooks/plivo", **plivo_request(forged, "1", v3=False))
        assert replayed.status_code == 401
        assert "already accepted on another request" in replayed.json()["reason"]
        text = (await stack.http.get("/metrics")).text
        assert 'dlrhub_signature_failures_total{provider="plivo",reason="replayed"}' in text
        status = await current(stack, "plivo", "p-1")
        assert (status.status, status.report_count) == (pb.DELIVERY_STATUS_DELIVERED, 1)
        fresh = plivo_request(form, "2")  # a genuine resend with a new nonce: a duplicate
        assert (await stack.http.post("/webhooks/plivo", **fresh)).json()["duplicates"] == 1


async def test_plivo_nonces_are_recorded_before_the_request_is_forwarded(tmp_path: Path) -> None:
    """statusd is down: the genuine V2 request gets 503, and its nonce on other parameters is
    refused at once, not forwarded; the genuine retry goes through once statusd is back."""
    async with running_statusd(statusd_settings(tmp_path)) as first:
        port = first.port
    genuine = plivo_request({"MessageUUID": "p-5", "Status": "undelivered"}, "5", v3=False)
    forged = plivo_request({"MessageUUID": "p-5", "Status": "delivered"}, "5", v3=False)
    async with (
        running_gateway(
            {**ENV, **ALLOW_V2},
            f"127.0.0.1:{port}",
            public_url=PUBLIC_URL,
            ingest_deadline_seconds=1,
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        assert (await http.post("/webhooks/plivo", **genuine)).status_code == 503
        refused = await http.post("/webhooks/plivo", **forged)
        assert refused.status_code == 401
        assert "already accepted on another request" in refused.json()["reason"]
        async with running_statusd(statusd_settings(tmp_path, statusd_port=port)) as daemon:
            for _ in range(50):
                response = await http.post("/webhooks/plivo", **genuine)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert response.json()["stored"] == 1
            stored = await daemon.store.get(pb.MessageKey(provider="plivo", message_id="p-5"))
            assert stored is not None
            assert stored.status == pb.DELIVERY_STATUS_UNDELIVERED


# -- Twilio event ids ---------------------------------------------------------------------

TWILIO = {"DLRHUB_TWILIO_AUTH_TOKEN": "twilio-token"}
TWILIO_URL = PUBLIC_URL + "/webhooks/twilio"
SID = "SM" + "0" * 31 + "1"
TWILIO_FORM = (
    ("AccountSid", "AC" + "0" * 32),
    ("ApiVersion", "2010-04-01"),
    ("ErrorCode", "30007"),
    ("From", "+15017122661"),
    ("MessageSid", SID),
    ("MessageStatus", "undelivered"),
    ("SmsSid", SID),
    ("SmsStatus", "undelivered"),
    ("To", "+15558675310"),
)


def twilio_request(form: tuple[tuple[str, str], ...], token: str = "") -> dict[str, Any]:
    """``form`` with the signature Twilio made for TWILIO_FORM (valid for any re-split)."""
    headers = {
        "Content-Type": FORM,
        "X-Twilio-Signature": twilio.sign(TWILIO_URL, TWILIO_FORM, "twilio-token"),
    }
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    return {"content": urlencode(form), "headers": headers}


async def test_twilio_callback_replayed_with_fresh_idempotency_tokens_is_one_report(
    make_stack: StackFactory,
) -> None:
    async with make_stack(env=TWILIO) as stack:
        first = await stack.http.post("/webhooks/twilio", **twilio_request(TWILIO_FORM, "tok-1"))
        assert first.json()["stored"] == 1
        for token in ("tok-2", "tok-3", "tok-4"):
            again = await stack.http.post("/webhooks/twilio", **twilio_request(TWILIO_FORM, token))
            assert again.json()["duplicates"] == 1
        assert (await current(stack, "twilio", SID)).report_count == 1


def _resplit(dropped: tuple[str, ...], *added: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted([*(pair for pair in TWILIO_FORM if pair[0] not in dropped), *added]))


#: Re-splits of TWILIO_FORM that sign the same: ErrorCode (or a status) vanishes or changes.
TWILIO_RESPLITS = {
    "name takes the value": _resplit(("ErrorCode",), ("ErrorCode3000", "7")),
    "value takes the name": _resplit(("ErrorCode",), ("Error", "Code30007")),
    "neighbour takes the name": _resplit(
        ("ApiVersion", "ErrorCode"), ("ApiVersion", "2010-04-01Error"), ("Code", "30007")
    ),
    "value swallows a neighbour": _resplit(
        ("ErrorCode", "From"), ("ErrorCode", "30007From+15017122661")
    ),
    "value tail becomes a name": _resplit(
        ("SmsStatus", "To"), ("SmsStatus", "un"), ("deliveredTo", "+15558675310")
    ),
}


@pytest.mark.parametrize("order", ["signed order", "reversed"])
@pytest.mark.parametrize("forged", TWILIO_RESPLITS.values(), ids=TWILIO_RESPLITS.keys())
async def test_twilio_parameters_re_split_under_a_valid_signature_are_refused(
    make_stack: StackFactory, forged: tuple[tuple[str, str], ...], order: str
) -> None:
    assert twilio.signing_string(TWILIO_URL, forged) == twilio.signing_string(
        TWILIO_URL, TWILIO_FORM
    )
    if order == "reversed":  # the body's order joins no re-split: the signed order does
        forged = forged[::-1]
    async with make_stack(env=TWILIO) as stack:
        refused = await stack.http.post("/webhooks/twilio", **twilio_request(forged))
        assert refused.status_code == 401
        assert await stack.stored_messages() == 0
        genuine = await stack.http.post("/webhooks/twilio", **twilio_request(TWILIO_FORM))
        assert genuine.json()["stored"] == 1
        assert (await current(stack, "twilio", SID)).latest_report.error.code == "30007"


# -- Vonage and Plivo V3 re-splits --------------------------------------------------------


@pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
async def test_vonage_merged_parameter_name_is_refused(
    make_stack: StackFactory, method: str
) -> None:
    stamp = "2026-12-04 10:00:00"
    genuine = {
        "messageId": "v-1",
        "status": "rejected",
        "err-code": "6",
        "message-timestamp": stamp,
        "msisdn": "447700900000",
        "timestamp": str(int(time.time())),
        "nonce": "n-1",
    }
    genuine["sig"] = vonage.sign(genuine, "vonage-secret", method)
    forged = {
        key: value for key, value in genuine.items() if key not in ("err-code", "message-timestamp")
    }
    forged["err-code=6&message-timestamp"] = stamp
    assert vonage.signing_string(forged) == vonage.signing_string(genuine)
    env = {
        "DLRHUB_VONAGE_SIGNATURE_SECRET": "vonage-secret",
        "DLRHUB_VONAGE_SIGNATURE_METHOD": method,
    }
    async with make_stack(env=env) as stack:
        headers = {"Content-Type": FORM}
        refused = await stack.http.post(
            "/webhooks/vonage", content=urlencode(forged), headers=headers
        )
        assert refused.status_code == 401
        assert "separator" in refused.json()["reason"]
        accepted = await stack.http.post(
            "/webhooks/vonage", content=urlencode(genuine), headers=headers
        )
        assert accepted.json()["stored"] == 1
        assert (await current(stack, "vonage", "v-1")).latest_report.error.code == "6"


#: Plivo V3 forms re-split under the signature of a genuine one: (genuine, forged).
PLIVO_RESPLITS = {
    "value takes the name": (
        {"MessageUUID": "p-7", "Status": "undelivered", "ErrorCode": "80"},
        (("MessageUUID", "p-7"), ("Status", "undelivered"), ("Error", "Code80")),
    ),
    # Signed sorted, "Amount1Error" + "Code80" join into ErrorCode80; listed in this order
    # the body joins nothing suspicious ("...Code80Amount1Error").
    "hidden by the body's order": (
        {"Amount": "1", "ErrorCode": "80", "MessageUUID": "p-7", "Status": "undelivered"},
        (("Status", "undelivered"), ("MessageUUID", "p-7"), ("Code80", ""), ("Amount", "1Error")),
    ),
}


@pytest.mark.parametrize(("genuine", "forged"), PLIVO_RESPLITS.values(), ids=PLIVO_RESPLITS.keys())
async def test_plivo_v3_form_re_split_under_a_valid_signature_is_refused(
    make_stack: StackFactory, genuine: dict[str, str], forged: tuple[tuple[str, str], ...]
) -> None:
    assert plivo.v3_string("POST", PLIVO_URL, forged) == plivo.v3_string(
        "POST", PLIVO_URL, tuple(genuine.items())
    )
    captured = plivo_request(genuine, "n-7")
    async with make_stack() as stack:
        refused = await stack.http.post(
            "/webhooks/plivo", content=urlencode(forged), headers=captured["headers"]
        )
        assert refused.status_code == 401
        assert "ErrorCode appears in the signed string" in refused.json()["reason"]
        assert (await stack.http.post("/webhooks/plivo", **captured)).json()["stored"] == 1
        assert (await current(stack, "plivo", "p-7")).latest_report.error.code == "80"

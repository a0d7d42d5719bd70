"""A webhook's path (gateway/intake.py), over real HTTP to a running Sanic server and real
gRPC to a running statusd: 200 only after the commit, with what statusd answered; a clear 4xx
for every bad input with the store unchanged. The limits met on the way are tested with their
modules: test_guard.py (rate limits, headers, items, nonces) and test_body.py (size, time)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.auth import basic
from gateway.providers.infobip import sign
from gateway.providers.plivo import sign_v3
from statusd.storage.base import MessageFilter
from tests.gateway.conftest import PUBLIC_URL, Stack

BASIC = {"Authorization": basic.authorization("infobip:pw")}


def infobip_body(*message_ids: str) -> bytes:
    results = [
        {
            "messageId": message_id,
            "to": "41793026727",
            "doneAt": "2019-11-09T16:00:00.000+0000",
            "status": {
                "groupId": 3,
                "groupName": "DELIVERED",
                "id": 5,
                "name": "DELIVERED_TO_HANDSET",
            },
        }
        for message_id in message_ids
    ]
    return json.dumps({"results": results}).encode()


def plivo_post(
    form: dict[str, str],
    token: str = "plivo-token",
    path: str = "/webhooks/plivo",
    nonce: str = "12345678901234567890",
) -> dict[str, Any]:
    """The arguments of ``http.post`` for a Plivo callback signed with V3."""
    signature = sign_v3("POST", PUBLIC_URL + path, tuple(form.items()), nonce, token)
    return {
        "url": path,
        "content": urlencode(form),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Plivo-Signature-V3": signature,
            "X-Plivo-Signature-V3-Nonce": nonce,
        },
    }


async def post_infobip(
    stack: Stack, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await stack.http.post(
        "/webhooks/infobip",
        content=body,
        headers={"Content-Type": "application/json", **(BASIC if headers is None else headers)},
    )


async def test_signed_batch_is_stored_before_the_200(stack: Stack) -> None:
    response = await post_infobip(stack, infobip_body("a-1", "a-2", "a-3"))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["stored"], answer["duplicates"], answer["stale"]) == (3, 0, 0)
    assert response.headers["X-Request-Id"] == answer["request_id"]
    assert await stack.stored_messages() == 3
    again = await post_infobip(stack, infobip_body("a-1", "a-2", "a-3"))
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)


async def test_hmac_signed_request_is_accepted(stack: Stack) -> None:
    body = infobip_body("h-1")
    response = await post_infobip(stack, body, {"X-Infobip-Signature": sign(body, "hmac-key")})
    assert response.status_code == 200
    status = await stack.statusd.store.list_messages(MessageFilter(), after=None, limit=5)
    assert status.items[0].latest_report.auth_method == "hmac"


async def test_plivo_callback_default_and_named_account(stack: Stack) -> None:
    form = {"MessageUUID": "p-1", "Status": "delivered", "To": "14155551234", "ErrorCode": ""}
    assert (await stack.http.post(**plivo_post(form))).status_code == 200
    named = plivo_post(form, "plivo-eu-token", "/webhooks/plivo/eu")
    assert (await stack.http.post(**named)).status_code == 200
    wrong_account = plivo_post(form, "plivo-token", "/webhooks/plivo/eu")
    assert (await stack.http.post(**wrong_account)).status_code == 401
    page = await stack.statusd.store.list_messages(
        MessageFilter(provider="plivo"), after=None, limit=5
    )
    assert sorted(item.account for item in page.items) == ["", "eu"]


async def test_quarantined_items_are_kept_and_answered_200(stack: Stack) -> None:
    body = json.dumps(
        {"results": [{"messageId": "ok-1", "status": {"groupName": "DELIVERED"}}, {"x": 1}]}
    )
    response = await post_infobip(stack, body.encode())
    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["quarantined"]) == (1, 1)
    assert await stack.quarantined() == 1


BAD_REQUESTS: list[tuple[str, dict[str, object], int, str]] = [
    ("unsigned", {"headers": {"Content-Type": "application/json"}}, 401, "unauthorized"),
    (
        "wrong signature",
        {"headers": {"Content-Type": "application/json", "X-Infobip-Signature": "00" * 32}},
        401,
        "unauthorized",
    ),
    ("malformed JSON", {"content": b"{not json"}, 400, "bad_request"),
    ("empty results", {"content": b'{"results": []}'}, 400, "bad_request"),
    ("no results", {"content": b'{"items": [1]}'}, 400, "bad_request"),
    (
        "wrong content type",
        {"headers": {**BASIC, "Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    ("oversized body", {"content": b'{"results": [' + b" " * 70_000 + b"]}"}, 413, "too_large"),
    ("unknown provider", {"url": "/webhooks/nosuch"}, 404, "not_found"),
    ("unknown account", {"url": "/webhooks/infobip/nosuch"}, 404, "not_found"),
    ("wrong method", {"method": "GET"}, 405, "method_not_allowed"),
]


async def test_every_bad_input_gets_its_4xx_and_changes_nothing(stack: Stack) -> None:
    for name, change, status, kind in BAD_REQUESTS:
        request: dict[str, object] = {
            "method": "POST",
            "url": "/webhooks/infobip",
            "content": infobip_body("bad-1"),
            "headers": {"Content-Type": "application/json", **BASIC},
        }
        request.update(change)
        response = await stack.http.request(**request)  # type: ignore[arg-type]
        assert response.status_code == status, name
        body = response.json()
        assert body["error"] == kind, name
        assert body["reason"], name
    assert await stack.stored_messages() == 0
    assert await stack.quarantined() == 0


async def test_deep_nesting_is_a_400(stack: Stack) -> None:
    for depth in (40, 5000):
        body = '{"results": [' + "[" * depth + "]" * depth + "]}"
        response = await post_infobip(stack, body.encode())
        assert response.status_code == 400
        assert "nested deeper" in response.json()["reason"]


async def test_long_message_ids_are_quarantined(stack: Stack) -> None:
    item = json.loads(infobip_body("m-1"))["results"][0]
    body = json.dumps({"results": [{**item, "messageId": "x" * 129}]})
    response = await post_infobip(stack, body.encode())
    assert response.json()["quarantined"] == 1
    assert await stack.stored_messages() == 0

"""The HTTP layer under hostile requests, over real HTTP to a running gateway and statusd:
random methods, paths, headers, content types, charsets and bodies. Never a 5xx, never a
crash; without valid credentials nothing reaches the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.basic import authorization as basic_authorization
from gateway.providers import PROVIDERS
from gateway.providers.base import SampleRequest
from statusd.storage.base import MessageFilter
from tests.fuzz.raw_http import Answer, request_bytes, send
from tests.fuzz.strategies import CONTENT_TYPES, HTTP_FUZZ, hostile_body
from tests.helpers.servers import BackgroundStack

ENV = {"DLRHUB_INFOBIP_BASIC_AUTH": "infobip:pw", "DLRHUB_PLIVO_AUTH_TOKEN": "plivo-token"}
SEED = SampleRequest(
    "POST",
    "",
    {},
    b'{"results":[{"messageId":"m-1","to":"41793026727","status":{"groupName":"DELIVERED"}}]}',
)
PATHS = [f"/webhooks/{name}" for name in PROVIDERS] + [
    "/webhooks/infobip/eu",
    "/webhooks/",
    "/webhooks/%00",
    "/webhooks/../metrics",
    "/healthz",
    "/readyz",
    "/nope",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundStack]:
    with BackgroundStack(
        tmp_path_factory.mktemp("http-fuzz"), ENV, max_body_bytes=64 * 1024
    ) as running:
        yield running


def check(answer: Answer | None) -> None:
    assert answer is not None, "the server closed without answering"
    assert answer.status < 500, (answer.status, answer.body)
    if answer.status >= 400 and answer.headers.get("content-type") == "application/json":
        body = answer.json()
        assert body["error"]
        assert body["reason"]


header_bytes = st.binary(max_size=60).filter(
    lambda value: b"\r" not in value and b"\n" not in value
)


hostile_requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        "path": st.sampled_from(PATHS),
        "content_type": st.sampled_from(CONTENT_TYPES).map(str.encode) | header_bytes,
        "headers": st.lists(
            st.tuples(st.from_regex(rb"X-[A-Za-z-]{1,20}", fullmatch=True), header_bytes),
            max_size=5,
        ),
        "authorization": st.one_of(
            st.none(), header_bytes, st.just(b"Basic aW5mb2JpcDp4"), st.just(b"Basic %%%")
        ),
        "body": hostile_body(SEED),
        "query": st.text(
            st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
            max_size=30,
        ),
    }
)


@pytest.fixture
def fresh_stack(tmp_path: Path) -> Iterator[BackgroundStack]:
    """A stack of its own, so that "nothing in the store" means this test's requests only."""
    with BackgroundStack(tmp_path, ENV, max_body_bytes=64 * 1024) as running:
        yield running


def test_hostile_requests_without_credentials_change_nothing(
    fresh_stack: BackgroundStack,
) -> None:
    """Random methods, paths, headers, content types and bodies, none with valid credentials:
    never a 5xx, and afterwards nothing at all in the store."""

    @HTTP_FUZZ
    @given(request=hostile_requests)
    def hostile(request: dict[str, Any]) -> None:
        sent = [*request["headers"], (b"Content-Type", request["content_type"])]
        if request["authorization"] is not None:
            sent.append((b"Authorization", request["authorization"]))
        query = request["query"]
        target = request["path"] + (f"?{query}" if query else "")
        raw = request_bytes(request["method"], target, sent, request["body"])
        check(send(fresh_stack.port, raw))

    hostile()
    store = fresh_stack.statusd.store if fresh_stack.statusd else None
    assert store is not None
    assert fresh_stack.run(store.list_messages(MessageFilter(), after=None, limit=10)).items == []
    assert fresh_stack.run(store.count_quarantined()) == 0


@HTTP_FUZZ
@given(body=hostile_body(SEED), content_type=st.sampled_from(CONTENT_TYPES))
def test_hostile_bodies_with_valid_credentials(
    stack: BackgroundStack, body: bytes, content_type: str
) -> None:
    headers = [
        (b"Authorization", basic_authorization("infobip:pw").encode()),
        (b"Content-Type", content_type.encode()),
    ]
    check(send(stack.port, request_bytes("POST", "/webhooks/infobip", headers, body)))

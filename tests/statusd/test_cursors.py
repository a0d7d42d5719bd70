"""statusd.cursors: page and resume tokens are signed, kind-bound and rotate with the keys
(their use by List and Watch is in test_reads.py and test_watch.py); whatever a client sends
as one, the answer is INVALID_ARGUMENT naming the field, never INTERNAL, never a traceback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable

import grpc
import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from statusd.cursors import BUILTIN_KEY, MAC_BYTES, MAX_TOKEN_CHARS, VERSION, CursorCodec
from statusd.errors import InvalidArgument
from statusd.reads import fingerprint
from statusd.server import Statusd
from statusd.storage.base import MessageFilter
from tests.helpers.reports import report
from tests.helpers.rpc import ingest, read, status_stub, watch


def test_tokens_round_trip_and_refuse_alterations() -> None:
    codec = CursorCodec([b"key-1"])
    token = codec.encode("page", {"c": "42"})
    assert codec.decode("page", token, "page_token") == {"c": "42"}
    assert "42" not in token
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1
    altered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in (altered, token[:-2], "", "%%%", token + "A"):
        with pytest.raises(InvalidArgument, match="page_token"):
            codec.decode("page", bad, "page_token")
    with pytest.raises(InvalidArgument, match="resume_token"):
        codec.decode("resume", token, "resume_token")  # another kind of token
    with pytest.raises(InvalidArgument):
        CursorCodec([b"key-2"]).decode("page", token, "page_token")  # another deployment
    rotated = CursorCodec([b"key-2", b"key-1"])
    assert rotated.decode("page", token, "page_token") == {"c": "42"}
    builtin = CursorCodec([BUILTIN_KEY])  # what statusd on loopback without keys uses
    assert builtin.decode("page", builtin.encode("page", {}), "page_token") == {}


KEY = b"a signing key of this deployment"


def forge(kind: str, body: bytes, key: bytes = KEY) -> str:
    """A token in the wire format around any body, with a MAC made with ``key``: what
    someone who knows (or guessed) a key could send."""
    mac = hmac.new(key, kind.encode() + b"\0" + body, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")


def json_body(payload: object) -> bytes:
    return bytes([VERSION]) + json.dumps(payload).encode()


def malformed(kind: str, key: bytes, valid_payload: dict[str, object]) -> dict[str, str]:
    """Every kind of malformed token of ``kind``, for a deployment signing with ``key``."""
    return {
        "bad base64": "!!!!not*base64",
        "impossible base64 length": "A" * 41,
        "not ascii": "t\u00f6ken",
        "too short": "AAAA",
        "too long": "A" * (MAX_TOKEN_CHARS + 1),
        "wrong signature": forge(kind, json_body(valid_payload), b"another key"),
        "other kind": forge("other", json_body(valid_payload), key),
        "bad JSON, signed": forge(kind, bytes([VERSION]) + b'{"c": ', key),
        "bad UTF-8, signed": forge(kind, bytes([VERSION]) + b"\xff\xfe\xfd", key),
        "JSON list, signed": forge(kind, json_body([1, 2]), key),
        "unknown version, signed": forge(kind, bytes([VERSION + 1]) + b"{}", key),
        "wrong field types, signed": forge(kind, json_body({"c": 5, "p": 5, "after": 5}), key),
    }


#: Cursors inside correctly signed tokens that no store handed out.
FOREIGN_CURSORS = ("not-a-cursor", "", "-1", "9" * 40, "\u00b2", "\u0000")


def test_the_codec_refuses_every_malformed_token() -> None:
    codec = CursorCodec([KEY])
    assert codec.decode("page", forge("page", json_body({"c": "1"})), "page_token") == {"c": "1"}
    for name, token in malformed("page", KEY, {"c": "1"}).items():
        if name == "wrong field types, signed":
            continue  # a valid token as far as the codec knows; its users check the fields
        with pytest.raises(InvalidArgument, match="page_token"):
            codec.decode("page", token, "page_token")


Call = Callable[[grpc.aio.Channel, str], Awaitable[object]]


async def list_call(channel: grpc.aio.Channel, token: str) -> object:
    request = status_pb.ListMessageStatusesRequest(page_token=token)
    return await status_stub(channel).ListMessageStatuses(request)


async def watch_call(channel: grpc.aio.Channel, token: str) -> object:
    call = watch(channel, resume_token=token)
    try:
        return await read(call)
    finally:
        call.cancel()


async def quarantine_call(channel: grpc.aio.Channel, token: str) -> object:
    request = ingest_pb.ListQuarantinedItemsRequest(page_token=token)
    return await ingest_grpc.IngestServiceStub(channel).ListQuarantinedItems(request)


#: (call, token kind, field, a payload that passes the codec's checks)
CALLS: dict[str, tuple[Call, str, str, dict[str, object]]] = {
    "ListMessageStatuses": (list_call, "page", "page_token", {"c": "1"}),
    "WatchMessageStatuses": (watch_call, "resume", "resume_token", {"p": None}),
    "ListQuarantinedItems": (quarantine_call, "quarantine", "page_token", {"after": "1"}),
}


@pytest.mark.parametrize("method", list(CALLS))
async def test_malformed_tokens_are_invalid_argument_over_grpc(
    statusd: Statusd,
    channel: grpc.aio.Channel,
    method: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    call, kind, field, payload = CALLS[method]
    key = statusd.reader.codec.keys[0]
    await ingest(channel, report("m-1"), report("m-2"))
    caplog.set_level(logging.WARNING, logger="statusd")
    for name, token in malformed(kind, key, payload).items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(channel, token)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert field in (caught.value.details() or ""), name
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_signed_page_token_with_a_foreign_cursor_is_invalid_argument(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    """The MAC is right and the filter matches, but the store never handed out the cursor."""
    await ingest(channel, report("m-1"))
    key = statusd.reader.codec.keys[0]
    for cursor in FOREIGN_CURSORS:
        payload = {"c": cursor, "f": fingerprint(MessageFilter())}
        token = forge("page", bytes([VERSION]) + json.dumps(payload).encode(), key)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_call(channel, token)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, cursor
        assert "not a" in (caught.value.details() or ""), cursor


async def test_a_signed_quarantine_token_with_a_foreign_cursor_starts_over(
    statusd: Statusd, channel: grpc.aio.Channel
) -> None:
    items = [pb.QuarantinedItem(provider="infobip", reason="test", raw="{}")]
    await ingest_grpc.IngestServiceStub(channel).IngestReports(
        ingest_pb.IngestReportsRequest(quarantined_items=items)
    )
    key = statusd.reader.codec.keys[0]
    for cursor in FOREIGN_CURSORS:
        token = forge("quarantine", json_body({"after": cursor}), key)
        answer = await quarantine_call(channel, token)
        assert isinstance(answer, ingest_pb.ListQuarantinedItemsResponse)
        assert len(answer.quarantined_items) <= 1, cursor


def test_a_codec_needs_a_key() -> None:
    """No silent fall-back to the built-in key: only statusd.auth.signing_keys chooses it."""
    with pytest.raises(ValueError, match="key"):
        CursorCodec([])

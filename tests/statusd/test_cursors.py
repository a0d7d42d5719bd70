"""statusd.cursors: page and resume tokens are signed, kind-bound and rotate with the keys
(their use by List and Watch is in test_reads.py and test_watch.py)."""

from __future__ import annotations

import base64

import pytest

from statusd.cursors import CursorCodec
from statusd.errors import InvalidArgument


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
    assert CursorCodec().decode("page", CursorCodec().encode("page", {}), "page_token") == {}

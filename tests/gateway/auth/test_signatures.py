"""Signature primitives: constant-time comparison over every configured secret, HMAC checks
in base64 and hex, and signed timestamps with their ``missing``/``invalid``/``stale`` labels."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import SecretStr

from gateway.auth import signatures
from gateway.errors import Unauthenticated

NOW = 1_767_225_600.0


def test_equal_compares_text_and_bytes() -> None:
    assert signatures.equal("abc", b"abc")
    assert not signatures.equal("abc", "abd")
    assert signatures.equal("é", "é".encode())


def test_any_equal_finds_a_match_among_every_pair() -> None:
    assert signatures.any_equal(["a", "b"], ["x", "b"])
    assert not signatures.any_equal(["a", "b"], ["x", "y"])
    assert not signatures.any_equal([], ["a"])


def test_hmac_matches_in_base64_and_hex_with_rotated_keys() -> None:
    message = b"body"
    digest = hmac.new(b"new", message, hashlib.sha256).digest()
    keys = [b"old", b"new"]
    assert signatures.hmac_matches(keys, message, [base64.b64encode(digest).decode()])
    assert signatures.hmac_matches(keys, message, ["junk", digest.hex()], encoding="hex")
    assert not signatures.hmac_matches([b"old"], message, [digest.hex()], encoding="hex")
    sha1 = hmac.new(b"old", message, hashlib.sha1).digest()
    assert signatures.hmac_matches(
        keys, message, [base64.b64encode(sha1).decode()], algorithm="sha1"
    )


def test_secret_values_and_the_first_secret() -> None:
    secrets = (SecretStr("one"), SecretStr("twö"))
    assert signatures.secret_values(secrets) == [b"one", "twö".encode()]
    assert signatures.first_secret(secrets) == "one"
    assert signatures.first_secret((), "fallback") == "fallback"


def test_sha256_hex() -> None:
    assert signatures.sha256_hex(b"") == hashlib.sha256(b"").hexdigest()


def test_a_current_timestamp_passes() -> None:
    assert signatures.check_timestamp(str(int(NOW) - 10), now=NOW, max_age=60, name="t") == (
        int(NOW) - 10
    )
    assert signatures.check_timestamp(int(NOW) - 10**6, now=NOW, max_age=0, name="t")


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (None, "missing"),
        ("", "missing"),
        ("soon", "invalid"),
        ("-5", "invalid"),
        ("1" * 13, "invalid"),
        (str(int(NOW) - 61), "stale"),
        (str(int(NOW) + 301), "stale"),
    ],
)
def test_a_bad_timestamp_is_refused_with_its_label(value: object, label: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        signatures.check_timestamp(value, now=NOW, max_age=60, name="t")
    assert caught.value.label == label

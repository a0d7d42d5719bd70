"""The standard-library HS256/384/512 JWT verifier, cross-checked with PyJWT."""

from __future__ import annotations

import hmac
import json

import jwt as pyjwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import jwt

KEY = b"k" * 64
NOW = 1_700_000_000.0


def token_with(header: dict[str, object], claims: dict[str, object], signature: str = "") -> str:
    parts = [jwt.b64url_encode(json.dumps(part).encode()) for part in (header, claims)]
    return ".".join([*parts, signature or jwt.b64url_encode(b"x" * 32)])


#: Registered claims PyJWT validates on its own (types, times, audience): left out, since the
#: comparison is about encoding and signing, and ours checks only the times (tested below).
_REGISTERED = frozenset({"exp", "nbf", "iat", "jti", "iss", "sub", "aud"})
_CLAIMS = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda name: name not in _REGISTERED),
    st.one_of(st.text(max_size=20), st.integers(-(10**9), 10**9), st.booleans()),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(claims=_CLAIMS, algorithm=st.sampled_from(["HS256", "HS384", "HS512"]))
def test_pyjwt_and_ours_agree(claims: dict[str, object], algorithm: str) -> None:
    theirs = pyjwt.encode(claims, KEY, algorithm=algorithm)
    assert jwt.decode(theirs, [KEY], now=NOW, algorithms=[algorithm]) == claims
    ours = jwt.encode(claims, KEY, algorithm)
    assert pyjwt.decode(ours, KEY, algorithms=[algorithm]) == claims
    with pytest.raises(jwt.TokenError):
        jwt.decode(theirs, [KEY + b"!"], now=NOW, algorithms=[algorithm])


def test_algorithms_are_pinned() -> None:
    token = pyjwt.encode({"a": 1}, KEY, algorithm="HS512")
    with pytest.raises(jwt.TokenError, match="not accepted"):
        jwt.decode(token, [KEY], now=NOW)  # HS256 only by default
    headers: list[dict[str, object]] = [
        {"alg": "none"},
        {"alg": "RS256"},
        {"alg": "hs256"},
        {},
        {"alg": 256},
    ]
    for header in headers:
        with pytest.raises(jwt.TokenError, match="not accepted"):
            jwt.decode(token_with(header, {"a": 1}), [KEY], now=NOW)
    unsigned = token_with({"alg": "none"}, {"a": 1}).rsplit(".", 1)[0] + "."
    with pytest.raises(jwt.TokenError):
        jwt.decode(unsigned, [KEY], now=NOW, algorithms=["HS256", "none"])


def test_rotated_keys_are_each_accepted() -> None:
    token = jwt.encode({"a": 1}, b"new-key")
    assert jwt.decode(token, [b"old-key", b"new-key"], now=NOW) == {"a": 1}
    with pytest.raises(jwt.TokenError):
        jwt.decode(token, [], now=NOW)


@pytest.mark.parametrize(
    ("claims", "label"),
    [
        ({"exp": NOW - 2}, "stale"),
        ({"nbf": NOW + 2}, "stale"),
        ({"exp": "soon"}, "invalid"),
    ],
)
def test_times_are_checked_with_one_second_of_leeway(claims: dict[str, object], label: str) -> None:
    with pytest.raises(jwt.TokenError) as caught:
        jwt.decode(jwt.encode(claims, KEY), [KEY], now=NOW)
    assert caught.value.label == label
    assert jwt.decode(jwt.encode({"exp": NOW - 1, "nbf": NOW + 1}, KEY), [KEY], now=NOW)


def test_max_age_needs_a_recent_iat() -> None:
    fresh = jwt.encode({"iat": NOW - 50}, KEY)
    assert jwt.decode(fresh, [KEY], now=NOW, max_age=60)
    with pytest.raises(jwt.TokenError) as caught:
        jwt.decode(fresh, [KEY], now=NOW, max_age=30)
    assert caught.value.label == "stale"
    with pytest.raises(jwt.TokenError, match="iat"):
        jwt.decode(jwt.encode({}, KEY), [KEY], now=NOW, max_age=30)
    assert jwt.decode(jwt.encode({"iat": NOW + 200}, KEY), [KEY], now=NOW, max_age=30)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "###.e30.sig", "e30.e30.@@", "W10.e30." + "A" * 43, "x" * 9000],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(jwt.TokenError):
        jwt.decode(token, [KEY], now=NOW)


def test_required_claims_and_non_object_claims() -> None:
    with pytest.raises(jwt.TokenError, match="iss"):
        jwt.decode(jwt.encode({"a": 1}, KEY), [KEY], now=NOW, required=["iss"])
    header = jwt.b64url_encode(b'{"alg":"HS256"}')
    claims = jwt.b64url_encode(b"[1, 2]")
    signature = jwt.b64url_encode(hmac.new(KEY, f"{header}.{claims}".encode(), "sha256").digest())
    with pytest.raises(jwt.TokenError, match="object"):
        jwt.decode(f"{header}.{claims}.{signature}", [KEY], now=NOW)

"""HTTP Basic credentials: one header parser and checker for every provider that accepts them;
a malformed header is a failed credential (``invalid``), never an unexpected exception."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from gateway.auth import basic
from gateway.errors import Unauthenticated

ACCEPTED = (SecretStr("old:pw"), SecretStr("new:pw"))


def test_the_header_round_trips() -> None:
    header = basic.authorization("user:pässword")
    assert header.startswith("Basic ")
    assert basic.credentials(header) == "user:pässword"
    assert basic.credentials("  basic " + header.split()[1] + " ") == "user:pässword"


@pytest.mark.parametrize("secret", ["old:pw", "new:pw"])
def test_every_rotated_pair_is_accepted(secret: str) -> None:
    basic.check(basic.authorization(secret), ACCEPTED)


def test_a_wrong_pair_is_invalid() -> None:
    with pytest.raises(Unauthenticated, match="do not match") as caught:
        basic.check(basic.authorization("old:guess"), ACCEPTED)
    assert caught.value.label == "invalid"


def test_an_absent_header_is_missing() -> None:
    for absent in (None, ""):
        with pytest.raises(Unauthenticated) as caught:
            basic.check(absent, ACCEPTED)
        assert caught.value.label == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic",
        "Basic %%%",
        "Basic " + base64.b64encode(b"\xff\xfe:pw").decode(),  # not UTF-8
        "Basic dXNlcjpwdw==é",  # not ASCII
        "Digest username=x",
    ],
)
def test_a_malformed_header_is_a_failed_credential(header: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        basic.check(header, ACCEPTED)
    assert caught.value.label == "invalid"


def test_nothing_configured_accepts_nothing() -> None:
    with pytest.raises(Unauthenticated):
        basic.check(basic.authorization("old:pw"), ())

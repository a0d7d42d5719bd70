"""Field normalizers shared by the provider modules: each value or an InvalidItem reason."""

from __future__ import annotations

import pytest

from gateway.providers.base import InvalidItem
from gateway.providers.fields import e164, required, text, whole_number


def test_required_strips_and_names_the_missing_field() -> None:
    assert required("  abc ", "id") == "abc"
    assert required(42, "id") == "42"
    for absent in (None, "", "   "):
        with pytest.raises(InvalidItem, match=r"^id is missing$"):
            required(absent, "id")
    with pytest.raises(InvalidItem, match="longer than 3"):
        required("abcd", "id", limit=3)
    with pytest.raises(InvalidItem, match="not a string"):
        required({"a": 1}, "id")


def test_text_whole_number_and_e164() -> None:
    assert text(None, "x") == ""
    assert text(True, "x") == "true"
    assert whole_number("7", "n") == 7
    with pytest.raises(InvalidItem):
        whole_number("-1", "n")
    assert e164("0041793026727") == "+41793026727"
    assert e164("AcmeInc") == "AcmeInc"

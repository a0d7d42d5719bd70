"""Urlencoded pairs: exactly what ``parse_qsl`` with blank values kept returns."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from gateway.errors import Malformed
from gateway.providers.urlencoded import pairs

CASES = [
    "",
    "&",
    "a=1",
    "a=1&b=&c",
    "&&a=1&&",
    "a=1=2&=x&==",
    "To=%2B14155551234&Time=2026-03-01+10%3A00%3A04.000000",
    "n%C3%A4me=v%C3%A4lue&raw=ä+ö",
    "bad=%ZZ%4&bad2=%&latin=%E9",
    "plus+name=a+b+c&pct%26=x%3Dy",
    urlencode({"Status": "delivered", "ErrorCode": "", "Body": "a&b=c d+e%f"}),
]


@pytest.mark.parametrize("text", CASES)
def test_pairs_are_parse_qsl_with_blank_values_kept(text: str) -> None:
    assert pairs(text, 1000) == tuple(parse_qsl(text, keep_blank_values=True, max_num_fields=1000))


LIMITED = [("a=1&a=1&a=1", True), ("a=1&a=1&a=1&a=1", False), ("&&", True), ("&&&", False)]


@pytest.mark.parametrize(("text", "allowed"), LIMITED)
def test_more_parts_than_the_limit_are_refused_like_parse_qsl(text: str, allowed: bool) -> None:
    if allowed:
        assert pairs(text, 3) == tuple(parse_qsl(text, True, max_num_fields=3))
        return
    with pytest.raises(Malformed, match="more than 3 parameters"):
        pairs(text, 3)
    with pytest.raises(ValueError, match="Max number of fields"):
        parse_qsl(text, True, max_num_fields=3)

"""dlrhub_common.phone: plain international numbers split as libphonenumber's parse splits
them (the callers' answers are held to the parse in tests/gateway/providers/test_fields.py
and tests/statusd/test_model.py)."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from dlrhub_common.phone import PlainNumber, plain_parts


def test_the_calling_code_is_the_first_digits_that_name_one() -> None:
    assert plain_parts("447700900123") == PlainNumber(44, ("GB", "GG", "IM", "JE"), "7700900123")
    assert plain_parts("41793026727") == PlainNumber(41, ("CH",), "793026727")
    nanp = plain_parts("14155550100")
    assert nanp is not None
    assert (nanp.code, nanp.national, "US" in nanp.regions) == (1, "4155550100", True)
    assert plain_parts("8801712345678") == PlainNumber(880, ("BD",), "1712345678")


def test_anything_but_plain_digits_takes_the_parse() -> None:
    arabic_indic = "٤٤٧٧٠٠٩٠٠١٢٣"  # digits, but not ASCII ones
    for digits in ("", "0447700900123", "44 7700 900123", "+447700900123", arabic_indic):
        assert plain_parts(digits) is None, digits
    assert plain_parts("44123") is None  # a national part too short to decide here
    assert plain_parts("4" * 18) is None  # too long
    assert plain_parts("999123456789") is None  # no such calling code


def kept(digits: str) -> bool:
    plain = plain_parts(digits)
    assert plain is not None
    return plain.kept_as_written


def test_a_national_part_the_parse_would_change_is_not_kept_as_written() -> None:
    assert not kept("390612345678")  # Italy's leading zero, kept apart by the parse
    assert not kept("78123456789")  # Russia's national prefix 8, stripped by the parse
    assert kept("447700900123")


@settings(max_examples=2000)
@given(st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE)), st.text("0123456789", max_size=16))
def test_a_number_kept_as_written_is_the_number_the_parse_builds(code: int, rest: str) -> None:
    plain = plain_parts(f"{code}{rest}")
    if plain is None or not plain.kept_as_written:
        return
    parsed = phonenumbers.parse(f"+{code}{rest}", None)
    assert plain.number() == parsed

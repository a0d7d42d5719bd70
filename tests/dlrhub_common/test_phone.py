"""dlrhub_common.phone: plain international numbers split as libphonenumber's parse splits
them (the callers' answers are held to the parse in tests/gateway/providers/test_fields.py
and tests/statusd/test_model.py)."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from dlrhub_common.phone import NATIONAL_LENGTHS, PlainNumber, plain_parts, possible_length


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


@settings(max_examples=3000)
@given(
    st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE)),
    st.text("123456789", min_size=1, max_size=1),
    st.text("0123456789", max_size=15),
)
def test_possible_is_what_libphonenumber_answers(code: int, first: str, rest: str) -> None:
    plain = plain_parts(f"{code}{first}{rest}")
    if plain is None:
        return
    assert plain.possible == phonenumbers.is_possible_number(plain.number())


def test_possible_length_over_every_calling_code_and_length() -> None:
    """Every pair plain_parts can produce, each with digits other than possible_length's own
    sample: the answer depends on the length alone."""
    for code in COUNTRY_CODE_TO_REGION_CODE:
        for length in NATIONAL_LENGTHS:
            for digits in ("9" * length, ("2468" * 4)[:length]):
                number = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits))
                assert possible_length(code, length) == phonenumbers.is_possible_number(number)

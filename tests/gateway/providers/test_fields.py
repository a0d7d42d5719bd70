"""Field normalizers shared by the provider modules: each value or an InvalidItem reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.providers import dropped, fields
from gateway.providers.base import InvalidItem
from gateway.providers.fields import (
    decimal_text,
    e164,
    first_time,
    identity_number,
    iso_time,
    lenient,
    network_code,
    recipient,
    required,
    set_time,
    text,
    whole_number,
)


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
    assert e164("+44 7700 900123") == "+447700900123"
    assert e164("447700900123") == "+447700900123"
    assert e164(None) == e164("") == ""
    for impossible in ("AcmeInc", "123", "+99912345678"):
        with pytest.raises(InvalidItem, match="not a possible international number"):
            e164(impossible, "to")


def test_recipient_is_information_left_out_when_not_a_number() -> None:
    with dropped.recording() as found:
        assert recipient("41793026727", "to") == "+41793026727"
        assert recipient("not-a-number", "to") == ""
        assert recipient(["+41793026727"], "to") == ""
    assert found == [
        ("recipient", "to is not a possible international number"),
        ("recipient", "to is not a string"),
    ]


def test_remembered_numbers_are_bounded_and_each_answer_is_the_parse_of_its_own() -> None:
    fields._remembered_international.cache_clear()
    # More distinct recipients than the cache holds, in several spellings, a few impossible.
    count = fields.E164_CACHE_SIZE + 500
    numbers = [f"4179{index * 37 % 10_000_000:07d}" for index in range(count)]
    for index, number in enumerate(numbers):
        spelled = (number, "+" + number, "00" + number)[index % 3]
        assert e164(spelled) == "+" + number
    assert fields._remembered_international.cache_info().currsize == fields.E164_CACHE_SIZE
    # The latest numbers answer from memory, the earliest were forgotten and parse again:
    # either way the answer is the parse's.
    latest = numbers[(count - 1) // 3 * 3]  # written plain, as asked again here
    before = fields._remembered_international.cache_info()
    assert e164(latest) == "+" + latest
    assert e164(numbers[0]) == "+" + numbers[0]
    after = fields._remembered_international.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 1)
    # An impossible number is remembered as impossible, and still refused every time.
    for _ in range(2):
        with pytest.raises(InvalidItem, match="not a possible international number"):
            e164("+99912345678", "to")
    # A value too long to remember is parsed, not remembered.
    spaced = "+41 " + " " * fields.E164_CACHED_LENGTH + "793026727"
    size = fields._remembered_international.cache_info().currsize
    assert identity_number(spaced) == "+41793026727"
    assert fields._remembered_international.cache_info().currsize == size


def test_identity_numbers_are_one_form_whatever_the_provider_wrote() -> None:
    assert identity_number("+447700900123") == identity_number("447700900123") == "+447700900123"
    assert identity_number("00447700900123") == "+447700900123"
    # Not parseable: the provider's text, the same every time.
    assert identity_number(" 12 ") == identity_number("12") == "12"
    assert identity_number("alice@example.com") == "alice@example.com"


@pytest.mark.parametrize(
    ("field_class", "default", "read", "value"),
    [
        ("mcc_mnc", ("", ""), network_code, "2341"),
        ("price", "", decimal_text, "free"),
        ("segments", 0, whole_number, "two"),
        ("sent_time", None, iso_time, "yesterday"),
        ("error_text", "", text, {"nested": "object"}),
    ],
)
def test_lenient_leaves_out_and_records_each_field_class(
    field_class: str, default: object, read: Callable[[object, str], object], value: object
) -> None:
    with dropped.recording() as found:
        assert lenient(field_class, default, read, value, "field") == default
    assert [name for name, _ in found] == [field_class]
    with pytest.raises(InvalidItem):  # the strict reading is unchanged
        read(value, "field")


def test_lenient_outside_a_recording_leaves_out_unrecorded() -> None:
    assert lenient("price", "", decimal_text, "free", "price") == ""
    with pytest.raises(ValueError, match="not one of the droppable fields"):
        lenient("message_id", "", decimal_text, "free", "price")


def test_not_known_network_codes_are_absent() -> None:
    for not_known in ("null", "NULL", "None", "", None):
        assert network_code(not_known, "mccMnc") == ("", "")
    assert network_code("23410", "mccMnc") == ("234", "10")


def test_first_time_prefers_in_order_and_falls_back() -> None:
    later = datetime(2026, 1, 2, tzinfo=UTC)
    with dropped.recording() as found:
        chosen = first_time(lenient("event_time", None, iso_time, "garbage", "at"), later)
    assert chosen == later
    assert found[0][0] == "event_time"
    assert first_time(None, None) is None


def _decimal_text_by_decimal(value: object) -> str:
    """What decimal_text wrote before its plain-text shortcut, for comparison."""
    amount = Decimal(str(value))
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 12:
        raise InvalidItem("out of range")
    return format(amount, "f")


@pytest.mark.parametrize(
    "value",
    [
        "0.0035",
        "0.00350",
        "-0",
        "-0.0",
        "7",
        "007",
        "1e-3",
        "1E+2",
        " 1.5 ",
        "1_000",
        "+2.5",
        "999999999999",
        "999999999999.99",
        "1000000000000",
        ".5",
        "5.",
        0.01,
        3,
        -2.5,
        1e-7,
    ],
)
def test_decimal_text_is_the_decimal_reading_of_the_value(value: object) -> None:
    try:
        expected = _decimal_text_by_decimal(value)
    except InvalidItem:
        with pytest.raises(InvalidItem, match="price is out of range"):
            decimal_text(value, "price")
        return
    assert decimal_text(value, "price") == expected


def test_set_time_writes_seconds_and_nanos_on_both_sides_of_the_epoch() -> None:
    report = pb.DeliveryReport()
    for when in (
        datetime(2026, 3, 1, 10, 0, 4, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime.fromisoformat("2019-11-09T16:00:00.000+0100"),
    ):
        set_time(report.event_time, when)
        micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        assert (report.event_time.seconds, report.event_time.nanos) == (
            micros // 1_000_000,
            micros % 1_000_000 * 1000,
        )
        assert report.event_time.ToDatetime(tzinfo=UTC) == when


def parsed_international(value: str) -> str | None:
    """What ``_international`` answers, by libphonenumber's full parse every time."""
    compact = re.sub(r"[\s\-().]", "", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\d{5,15}", compact.removeprefix("+")):
        return None
    try:
        number = phonenumbers.parse("+" + compact.removeprefix("+"), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=3000)
@given(
    st.sampled_from(["", "+", "00", "+ "]),
    st.sampled_from([*sorted(COUNTRY_CODE_TO_REGION_CODE), 0, 999]),
    st.text("0123456789", max_size=17),
)
def test_plain_numbers_normalize_as_the_full_parse_does(
    spelling: str, code: int, rest: str
) -> None:
    """The parse is skipped for plain digits; the answer is the parse's, possible or not,
    at every length and for every calling code, national prefixes and zeros included."""
    value = f"{spelling}{code}{rest}"
    assert fields._parse_international(value) == parsed_international(value)


@given(st.text(max_size=24))
def test_any_text_normalizes_as_the_full_parse_does(value: str) -> None:
    assert fields._parse_international(value) == parsed_international(value)

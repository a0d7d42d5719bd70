"""International numbers read as libphonenumber's parse reads them, without the parse where
it would only confirm what the digits already say.

``phonenumbers.parse`` is the costliest step of a report in both processes (regular
expressions for extensions, punctuation and prefixes on every call). For the commonest
input, a plain international number (ASCII digits after the ``+``), it reduces to: the
calling code is the first one to three digits that name one, and the national part is the
rest, kept as written unless it starts with ``0`` or with the national prefix the parse
strips. :func:`plain_parts` answers that case and sends every other one to the parse; the
tests hold each caller to the parse's answers over every calling code.
"""

from __future__ import annotations

import functools
import re
from typing import Final, NamedTuple

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

MAX_CALLING_CODE_DIGITS: Final = 3  # libphonenumber's longest country calling code
#: National parts outside these lengths take the full parse (which refuses some of them).
NATIONAL_LENGTHS: Final = range(4, 15)


class PlainNumber(NamedTuple):
    """A plain international number as the parse would split it."""

    code: int
    regions: tuple[str, ...]
    national: str

    @property
    def kept_as_written(self) -> bool:
        """Whether the parse keeps the national part as written: no leading zero (kept
        apart by the parse) and no national prefix it would strip."""
        if self.national.startswith("0"):
            return False
        prefix = national_prefix(self.code)
        return prefix is None or prefix.match(self.national) is None

    def number(self) -> phonenumbers.PhoneNumber:
        """The number the parse would build (valid only when :attr:`kept_as_written`)."""
        return phonenumbers.PhoneNumber(country_code=self.code, national_number=int(self.national))

    @property
    def possible(self) -> bool:
        """``phonenumbers.is_possible_number(self.number())`` (valid only when
        :attr:`kept_as_written`), from :func:`possible_length`."""
        return possible_length(self.code, len(self.national))


def plain_parts(digits: str) -> PlainNumber | None:
    """The calling code, its regions and the national part of ``digits`` (what follows the
    ``+``) when they are ASCII digits with no leading zero, a known calling code and a
    national part of :data:`NATIONAL_LENGTHS`; None for anything else (take the parse)."""
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    found = _calling_code(digits[:MAX_CALLING_CODE_DIGITS])
    if found is None:
        return None
    code, length, regions = found
    national = digits[length:]
    if len(national) not in NATIONAL_LENGTHS:
        return None
    return PlainNumber(code, regions, national)


@functools.lru_cache(maxsize=2048)
def _calling_code(prefix: str) -> tuple[int, int, tuple[str, ...]] | None:
    """The calling code a number starting with ``prefix`` (its first digits, no leading
    zero) has: the first one to three digits that name one, with their count and the code's
    regions; None when none does. Asked once per prefix: there are at most 1,110 of them (one
    to three ASCII digits)."""
    for length in range(1, MAX_CALLING_CODE_DIGITS + 1):
        code = int(prefix[:length])
        regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
        if regions is not None:
            return code, length, tuple(regions)
    return None


@functools.cache
def national_prefix(code: int) -> re.Pattern[str] | None:
    """The national prefix a parse strips after calling code ``code`` (its main region's)."""
    main = phonenumbers.region_code_for_country_code(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, main)
    pattern = None if metadata is None else metadata.national_prefix_for_parsing
    return None if pattern is None else re.compile(pattern)


@functools.cache
def possible_length(code: int, length: int) -> bool:
    """Whether libphonenumber calls a number possible whose calling code is ``code`` and whose
    national part (no leading zero) has ``length`` digits: its answer depends on nothing else
    (the main region's possible lengths), so it is asked once per pair. :func:`plain_parts`
    admits at most every calling code times :data:`NATIONAL_LENGTHS` pairs."""
    sample = phonenumbers.PhoneNumber(country_code=code, national_number=int("1" * length))
    return bool(phonenumbers.is_possible_number(sample))

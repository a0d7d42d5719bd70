"""Field normalizers shared by the provider modules: each turns one raw field into its
canonical form, or raises :class:`~gateway.providers.base.InvalidItem` with a reason.

Strict on identity, lenient on information: on a field that identifies the item (message
id, account) or says what happened (status) the InvalidItem quarantines the item; an
informational field is read through :func:`lenient`, which leaves it out of the report
instead, recorded in :mod:`gateway.providers.dropped` (the raw item keeps it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeVar

import phonenumbers

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common.phone import plain_parts
from gateway.providers.base import MAX_MESSAGE_ID_LENGTH, InvalidItem
from gateway.providers.dropped import drop

_DIGITS = re.compile(r"\d{5,15}")
#: What people write between a number's digits: spaces, dashes, dots and parentheses.
_SEPARATORS = re.compile(r"[\s\-().]")
#: A channel address's prefix (Twilio ``whatsapp:+15558675310``).
_CHANNEL = re.compile(r"([a-z][a-z0-9-]{1,31}:)(.+)")
#: Values providers write for "not known" in a field that is otherwise a code or number.
_NOT_KNOWN = frozenset({"null", "none", "unknown", "n/a"})
T = TypeVar("T")


def lenient(field_class: str, default: T, read: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``read(*args, **kwargs)`` for an informational field: when it raises InvalidItem the
    field is left out (``default``) and the omission recorded as ``field_class`` (one of
    :data:`gateway.providers.dropped.FIELDS`) instead of quarantining the item."""
    try:
        return read(*args, **kwargs)
    except InvalidItem as exc:
        drop(field_class, str(exc))
        return default


def first_time(*times: datetime | None) -> datetime | None:
    """The first present of a provider's documented event times, in order of preference
    (each read through :func:`lenient`, so an unreadable one is skipped); None when none is,
    and the report's receive time stands for it."""
    return next((when for when in times if when is not None), None)


def message_id(value: object, field_name: str) -> str:
    """A provider message id: a non-empty string of at most MAX_MESSAGE_ID_LENGTH characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidItem(f"{field_name} is missing or not a string")
    if len(value) > MAX_MESSAGE_ID_LENGTH:
        raise InvalidItem(f"{field_name} is longer than {MAX_MESSAGE_ID_LENGTH} characters")
    return value.strip()


#: Most numbers :func:`_international` remembers: a number's reports (queued, sent, delivered)
#: and a campaign's retries come close together, and libphonenumber's parse is the costliest
#: step of normalizing a report. Only values of at most E164_CACHED_LENGTH characters are
#: remembered, so the cache holds a few MiB at most.
E164_CACHE_SIZE = 16_384
E164_CACHED_LENGTH = 64


def _international(value: str) -> str | None:
    """``value`` in E.164 when it is a possible international number written with ``+``,
    ``00`` or digits only (``447700900123``, ``+44 7700 900123``, ``0044...``); else None.
    The answers for the latest numbers are remembered (:data:`E164_CACHE_SIZE`, least
    recently used forgotten first)."""
    if len(value) <= E164_CACHED_LENGTH:
        return _remembered_international(value)
    return _parse_international(value)


def _parse_international(value: str) -> str | None:
    compact = value if value.isdigit() else _SEPARATORS.sub("", value)  # no separator in digits
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _DIGITS.fullmatch(compact.removeprefix("+")):
        return None
    plain = plain_parts(compact.removeprefix("+"))
    if plain is not None and plain.kept_as_written:  # what the parse would build, without it
        return f"+{plain.code}{plain.national}" if plain.possible else None
    try:
        number = phonenumbers.parse("+" + compact.removeprefix("+"), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


#: :func:`_parse_international` with a bounded memory of its answers (a pure function).
_remembered_international = lru_cache(maxsize=E164_CACHE_SIZE)(_parse_international)


def e164(value: object, field_name: str = "recipient") -> str:
    """A recipient in E.164 (``447700900123`` → ``+447700900123``), checked to be a possible
    number with libphonenumber, a channel prefix kept (``whatsapp:+15558675310``); empty when
    absent; InvalidItem when it is not a possible international number (read it through
    :func:`recipient` to leave it out instead)."""
    if value is None or value == "":
        return ""
    raw = text(value, field_name, limit=64).strip()
    if not raw:
        return ""
    channel = _CHANNEL.match(raw)
    prefix, address = (channel.group(1), channel.group(2)) if channel else ("", raw)
    number = _international(address)
    if number is None:
        raise InvalidItem(f"{field_name} is not a possible international number")
    return prefix + number


def recipient(value: object, field_name: str) -> str:
    """A recipient that is information, not identity: :func:`e164`, or left out (recorded as
    ``recipient``) when it is not a possible number."""
    return lenient("recipient", "", e164, value, field_name)


def identity_number(value: str) -> str:
    """A phone number that is part of a message id (Sinch ``<batch_id>:<recipient>``): in
    E.164 when it parses as a possible international number, so ``+44…`` and ``44…`` name
    one message; otherwise the provider's text, stripped, the same way every time."""
    return _international(value) or value.strip()


#: A decimal already written as :func:`decimal_text` writes it (no exponent, no leading zero,
#: less than 10**12): its text is its answer, without a round trip through Decimal.
_PLAIN_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]+)?")
_MAX_AMOUNT = Decimal(10) ** 12


def decimal_text(value: object, field_name: str) -> str:
    """A money amount as a decimal string ("0.0035"), never a float; empty when absent."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise InvalidItem(f"{field_name} is not a number")
    written = str(value)
    if _PLAIN_DECIMAL.fullmatch(written):
        return written
    try:
        amount = Decimal(written)
    except InvalidOperation:
        raise InvalidItem(f"{field_name} is not a number") from None
    if not amount.is_finite() or abs(amount) >= _MAX_AMOUNT:
        raise InvalidItem(f"{field_name} is out of range")
    return format(amount, "f")


def set_price(report: pb.DeliveryReport, value: object, name: str, amount_key: str) -> None:
    """``report.price`` from a provider's price object (``{amount_key: ..., "currency": ...}``,
    named ``name`` in reasons); nothing when absent; InvalidItem when it does not read."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidItem(f"{name} is not an object")
    amount = decimal_text(value.get(amount_key), f"{name}.{amount_key}")
    currency = text(value.get("currency"), f"{name}.currency", limit=8)
    report.price.amount, report.price.currency = amount, currency


def whole_number(value: object, field_name: str, *, default: int = 0) -> int:
    """A non-negative integer from an int or digit string; ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidItem(f"{field_name} is not a whole number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise InvalidItem(f"{field_name} is not a whole number")
    if not 0 <= number < 2**31:
        raise InvalidItem(f"{field_name} is out of range")
    return number


def text(value: object, field_name: str, *, limit: int = 4000) -> str:
    """A bounded string field; numbers are turned into text; empty when absent."""
    if type(value) is str and len(value) <= limit:  # the commonest case, checked first
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise InvalidItem(f"{field_name} is not a string")
    if len(value) > limit:
        raise InvalidItem(f"{field_name} is longer than {limit} characters")
    return value


def required(value: object, field_name: str, *, limit: int = 4000) -> str:
    """A string field that must be present: stripped of surrounding space, and raising
    InvalidItem ``<field> is missing`` when absent or blank."""
    found = text(value, field_name, limit=limit).strip()
    if not found:
        raise InvalidItem(f"{field_name} is missing")
    return found


#: A provider's error codes: code → (description, permanent or None when the provider does
#: not say, the canonical status a failure with this code gets or None to keep the mapped one).
ErrorCodes = Mapping[str, tuple[str, bool | None, "pb.DeliveryStatus.ValueType | None"]]
#: The mapped statuses an error code may refine: failures, never progress or delivery.
FAILURES = frozenset({pb.DELIVERY_STATUS_UNDELIVERED, pb.DELIVERY_STATUS_FAILED})


def apply_error_code(
    report: pb.DeliveryReport,
    code: str,
    table: ErrorCodes,
    refinable: frozenset[pb.DeliveryStatus.ValueType] = FAILURES,
) -> None:
    """Sets ``report.error`` from ``code`` and its table entry, and refines a failure's status
    (``report.status`` must be set) when the entry names a better one."""
    description, permanent, refined = table.get(code, ("", None, None))
    report.error.code = code
    report.error.description = description
    if permanent is not None:
        report.error.permanent = permanent
    if refined is not None and report.status in refinable:
        report.status = refined


def network_code(value: object, field_name: str) -> tuple[str, str]:
    """MCC and MNC from an MCCMNC of 5 or 6 digits (``23410`` → 234, 10); empty when absent
    or written as not known (Infobip sends the string ``"null"``)."""
    network = text(value, field_name, limit=8).strip()
    if not network or network.lower() in _NOT_KNOWN:
        return "", ""
    if not network.isdigit() or len(network) not in (5, 6):
        raise InvalidItem(f"{field_name} is not 5 or 6 digits")
    return network[:3], network[3:]


def iso_time(value: object, field_name: str, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 date-time (``2019-11-09T16:00:00.000+0000``, ``...Z``, ``...+00:00``,
    ``2024-05-01 10:00:00.123456``); None when absent. Without an offset it is refused, unless
    the provider documents its times as UTC (``naive_is_utc``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidItem(f"{field_name} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidItem(f"{field_name} is not a date-time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise InvalidItem(f"{field_name} has no UTC offset")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def epoch_millis(value: object, field_name: str) -> datetime | None:
    """Milliseconds since the epoch (a number or digit string) as a UTC date-time."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidItem(f"{field_name} is not a number of milliseconds")
    try:
        millis = float(value)
    except ValueError:
        raise InvalidItem(f"{field_name} is not a number of milliseconds") from None
    if not 0 <= millis < 1e14:
        raise InvalidItem(f"{field_name} is out of range")
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def set_time(target: Any, value: datetime | None) -> None:
    """Sets a Timestamp field from an aware datetime (leaves it unset for None)."""
    if value is not None:
        since = value - _EPOCH  # days may be negative; seconds and microseconds never are
        target.seconds = since.days * 86_400 + since.seconds
        target.nanos = since.microseconds * 1000

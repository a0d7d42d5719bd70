"""Log lines: JSON, phone numbers masked by default, no line forging."""

from __future__ import annotations

import json
import logging

import pytest

from dlrhub_common import logs


def test_mask_phone() -> None:
    assert logs.mask_phone("+447700900123") == "+4477*****123"
    assert logs.mask_phone("41793026727") == "4179****727"
    assert logs.mask_phone("12345") == "12345"


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_mask_numbers_and_escape_newlines() -> None:
    logs.configure("info", "json", mask_phones=True)
    line = logs.JsonFormatter().format(record("to +447700900123\nforged", recipient="447700900123"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "to +4477*****123\nforged"
    assert entry["recipient"] == "4477*****123"
    assert entry["level"] == "info"


def test_masking_can_be_turned_off() -> None:
    logs.configure("info", "json", mask_phones=False)
    try:
        assert (
            json.loads(logs.JsonFormatter().format(record("+447700900123")))["message"]
            == "+447700900123"
        )
    finally:
        logs.configure("info", "json", mask_phones=True)


def test_text_format_escapes_control_characters(caplog: pytest.LogCaptureFixture) -> None:
    text = logs.TextFormatter().format(record("a\x1b[31mred"))
    assert "\x1b" not in text

"""Logging for both processes: one JSON object per line (or plain text for a terminal).

Log lines never carry secrets, and phone numbers are masked unless the operator opts out
(``DLRHUB_LOG_PHONE_NUMBERS=true``). Control characters in messages are escaped by the
JSON encoder, so a provider payload cannot forge log lines.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal

LogFormat = Literal["json", "text"]

_PHONE = re.compile(r"(?<![\w+])\+?\d{7,15}(?!\w)")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_mask_phones = True


def mask_phone(value: str) -> str:
    """``+447700900123`` → ``+4477*****123``: enough to correlate, not enough to identify."""
    digits = value.lstrip("+")
    if len(digits) < 7:
        return value
    shown = digits[:4] + "*" * (len(digits) - 7) + digits[-3:]
    return ("+" if value.startswith("+") else "") + shown


def scrub(text: str) -> str:
    """Masks every phone-number-like run of digits in ``text`` (when masking is on)."""
    if not _mask_phones:
        return text
    return _PHONE.sub(lambda match: mask_phone(match.group(0)), text)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """Readable single lines for a terminal, with the same masking."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if extras:
            text += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return scrub(text).encode("unicode_escape").decode("ascii").replace("\\n", "\n")


def configure(level: str = "info", fmt: LogFormat = "json", *, mask_phones: bool = True) -> None:
    """Sets up the root logger once per process."""
    global _mask_phones  # noqa: PLW0603 - one process-wide switch, set at start-up
    _mask_phones = mask_phones
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("sanic.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)

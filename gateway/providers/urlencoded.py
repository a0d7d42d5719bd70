"""Reading ``application/x-www-form-urlencoded`` text (a webhook's query string and form body)
into its pairs, in order, blank values kept: what
``urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=limit)`` returns, pair
for pair, without its per-pair overhead (every webhook's query and form are read here)."""

from __future__ import annotations

from urllib.parse import unquote

from gateway.errors import Malformed


def pairs(text: str, limit: int) -> tuple[tuple[str, str], ...]:
    """The ``(name, value)`` pairs of ``text``, ``+`` and ``%XX`` decoded (UTF-8, undecodable
    bytes replaced); empty parts skipped, a part without ``=`` a blank value. Raises
    Malformed when ``text`` holds more than ``limit`` parts."""
    if text and text.count("&") >= limit:
        raise Malformed(f"more than {limit} parameters")
    found = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:  # only these change when decoded
            if "+" in name or "%" in name:
                name = unquote(name.replace("+", " "))
            if "+" in value or "%" in value:
                value = unquote(value.replace("+", " "))
        found.append((name, value))
    return tuple(found)

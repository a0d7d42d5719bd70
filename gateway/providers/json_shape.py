"""Judging a JSON body's shape from its bytes, before anything is decoded: how deep it nests
and how many arrays and objects it holds (:func:`check_json_shape`, called by
:func:`gateway.providers.base.json_body`). A hostile body is refused after a few linear
passes over its bytes, never after building a tree of objects."""

from __future__ import annotations

from gateway.errors import Malformed, PayloadTooLarge

#: Deepest nesting of arrays and objects accepted in a JSON body.
MAX_JSON_DEPTH = 32
#: Most arrays and objects accepted in a JSON body: far above any provider's largest request
#: (DLRHUB_MAX_ITEMS_PER_REQUEST items of a few objects each), far below what 1 MiB can hold.
MAX_JSON_CONTAINERS = 50_000

_ESCAPES = (b"\\\\", b'\\"')  # an escaped backslash, then an escaped quote
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[{]}')))
_PARENS = bytes.maketrans(b"[{]}", b"(())")


def check_json_shape(body: bytes) -> None:
    """Raises Malformed when a JSON text nests deeper than MAX_JSON_DEPTH, PayloadTooLarge
    when it holds more than MAX_JSON_CONTAINERS arrays and objects. Judged on the bytes with
    a few linear passes and no Python loop over them (a hostile 1 MiB body costs
    milliseconds, never a tree of objects): the brackets outside strings, as ``(`` and
    ``)`` (:func:`json_brackets`), lose their innermost level with each deletion of ``()``.
    Exact for valid JSON; for anything else, the decoder has the last word."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    brackets = json_brackets(body)
    deep = Malformed(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    if b"(" * (MAX_JSON_DEPTH + 1) in brackets:
        raise deep
    if brackets.count(b"(") > MAX_JSON_CONTAINERS:
        raise PayloadTooLarge(f"body holds more than {MAX_JSON_CONTAINERS} arrays and objects")
    for _ in range(MAX_JSON_DEPTH):  # at most 2 * MAX_JSON_CONTAINERS bytes each
        if not brackets:
            return
        brackets = brackets.replace(b"()", b"")
    if b"()" in brackets:
        raise deep


def json_brackets(body: bytes) -> bytes:
    """A JSON text's brackets outside strings, ``[`` and ``{`` as ``(``, ``]`` and ``}`` as
    ``)``. Escapes go first; then, of the quotes and brackets, each ``""`` (a string with no
    bracket in it, or the seam between two strings: either way the strings' parity stays);
    only if quotes remain is the text split on them (every other part is inside a string)."""
    if b'"' in body:
        for escape in _ESCAPES:
            body = body.replace(escape, b"")
        body = body.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
        if b'"' in body:
            body = b"".join(body.split(b'"')[::2])
    return body.translate(_PARENS, _NOT_STRUCTURE)

"""Hypothesis strategies for hostile webhook requests.

Each provider's own ``sample()`` request is the seed; the strategies mutate it (bytes, JSON
values, form values, headers, content types, charsets), or replace it with random bytes,
random JSON, deep nesting, huge numbers and duplicate keys. ``DLRHUB_FUZZ_EXAMPLES`` sets how
many examples each fuzz test runs (``make test`` runs a short version, ``make fuzz`` 100,000).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gateway.providers.base import SampleRequest

EXAMPLES = int(os.environ.get("DLRHUB_FUZZ_EXAMPLES", "150"))
HTTP_EXAMPLES = int(os.environ.get("DLRHUB_FUZZ_HTTP_EXAMPLES", str(EXAMPLES)))
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
#: Settings of the in-process fuzz tests (provider verifiers and parsers).
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=_SLOW_IS_FINE)
#: Settings of the fuzz tests over real HTTP (slower per example).
HTTP_FUZZ = settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=_SLOW_IS_FINE)

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-16",
    "text/plain",
    "text/plain; charset=UTF-8",
    "application/xml",
    "multipart/form-data; boundary=x",
    "",
    "application/json\x00",
    "*/*",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e308",
            "NaN",
            "9" * 40,
            "\u0000",
            "\ud7ff",
            "+",
            "2019-13-45T99:99:99.000+9999",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def mutated_json(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed JSON with a value replaced somewhere (or a key dropped), as bytes."""
    document = json.loads(seed)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        if path and draw(st.booleans()) and isinstance(_parent(document, path), dict):
            parent = _parent(document, path)
            document = _replace(
                document, path[:-1], {k: v for k, v in parent.items() if k != path[-1]}
            )
        else:
            document = _replace(document, path, draw(json_values))
    return json.dumps(document).encode("utf-8", "surrogatepass")


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_form(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed form with values replaced, parameters dropped or added, or repeated."""
    pairs = parse_qsl(seed.decode(), keep_blank_values=True)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "repeat"]))
        if action == "replace" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(st.text(max_size=30)))
        elif action == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif action == "add":
            pairs.append((draw(st.text(min_size=1, max_size=10)), draw(st.text(max_size=20))))
        elif pairs:
            pairs.append(pairs[draw(st.integers(0, len(pairs) - 1))])
    return urlencode(pairs).encode("utf-8", "surrogatepass")


def deep(depth: int) -> bytes:
    return b'{"results": ' + b"[" * depth + b"]" * depth + b"}"


@st.composite
def hostile_body(draw: st.DrawFn, sample: SampleRequest) -> bytes:
    """A body derived from ``sample``, or plain hostile bytes."""
    seed = sample.body
    choices = ["bytes", "json", "flip", "deep", "duplicate_keys", "huge_number", "invalid_utf8"]
    is_json = seed[:1] in (b"{", b"[")
    choices += ["mutated_json"] * 3 if is_json else ["mutated_form"] * 3 if b"=" in seed else []
    kind = draw(st.sampled_from(choices))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode("utf-8", "surrogatepass")
    if kind == "flip" and seed:
        index = draw(st.integers(0, len(seed) - 1))
        return seed[:index] + bytes([seed[index] ^ draw(st.integers(1, 255))]) + seed[index + 1 :]
    if kind == "deep":
        return deep(draw(st.sampled_from([33, 100, 2000, 50_000])))
    if kind == "duplicate_keys" and is_json:
        return seed.replace(b"{", b'{"messageId": "dup", "id": "dup", "results": [], ', 1)
    if kind == "huge_number":
        return (
            seed.replace(b"1", b"1" + b"9" * draw(st.integers(20, 5000)), 1)
            if seed
            else b"9" * 5000
        )
    if kind == "invalid_utf8":
        return seed[: len(seed) // 2] + b"\xff\xfe\xc3\x28" + seed[len(seed) // 2 :]
    if kind == "mutated_json":
        return draw(mutated_json(seed))
    if kind == "mutated_form":
        return draw(mutated_form(seed))
    return seed


@st.composite
def hostile_headers(draw: st.DrawFn, sample: SampleRequest) -> dict[str, str]:
    """The sample's headers with values changed, dropped, or random ones added."""
    headers = dict(sample.headers)
    for name in list(headers):
        action = draw(st.sampled_from(["keep", "keep", "drop", "garble"]))
        if action == "drop":
            del headers[name]
        elif action == "garble":
            headers[name] = draw(
                st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
            )
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    extra = draw(
        st.dictionaries(
            st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
            max_size=3,
        )
    )
    return {**headers, **extra}

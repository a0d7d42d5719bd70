"""A JSON body's depth and size judged from its bytes before anything is decoded
(gateway/providers/json_shape.py), through :func:`gateway.providers.base.json_body`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import Malformed, PayloadTooLarge
from gateway.providers.base import json_body
from gateway.providers.json_shape import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, check_json_shape
from tests.helpers.requests import inbound


def shape_error(body: bytes) -> type[Exception] | None:
    try:
        check_json_shape(body)
    except (Malformed, PayloadTooLarge) as exc:
        return type(exc)
    return None


def nested(depth: int, inner: object = 1) -> Any:
    value = inner
    for level in range(depth):
        value = [value] if level % 2 else {"k": value, "[": "]]"}
    return value


@pytest.mark.parametrize("depth", [2, 5, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_nesting_up_to_the_limit_is_accepted(depth: int) -> None:
    value = {"results": [nested(depth - 2, "x") for _ in range(40)]}  # 2: object and array
    assert shape_error(orjson.dumps(value)) is None
    assert json_body(inbound("https://x", body=orjson.dumps(value))) == value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100, 2000])
def test_deeper_nesting_is_malformed_before_decoding(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[bytes] = []
    monkeypatch.setattr(orjson, "loads", decoded.append)
    body = orjson.dumps(nested(min(depth, 200))) if depth <= 200 else b"[" * depth + b"]" * depth
    with pytest.raises(Malformed, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        json_body(inbound("https://x", body=body))
    assert decoded == []


def test_brackets_inside_strings_do_not_count() -> None:
    """Brackets in strings, escaped quotes and backslashes among them, are text, not nesting;
    depth hidden behind a string's closing brackets is still found."""
    text = '[[[{"a": "\\"]]]\\\\", "b": "' + "[" * 100 + '"}]]]'
    assert shape_error(text.encode()) is None
    assert shape_error(b'["]]]]]]]]", ' + b"[" * 40 + b"]" * 40 + b"]") is Malformed
    assert shape_error(orjson.dumps(["\\", '\\"', "[" * 50])) is None


def test_a_1_mib_nested_body_is_refused() -> None:
    deep_first = b"[" + b"[" * 40 + b"]" * 40 + b"," + b"[]," * 349_000 + b"[]]"
    interleaved = b"[" + b"[[]," * 40 + b"]" * 40 + b"]"
    assert shape_error(deep_first) is Malformed
    assert shape_error(interleaved) is Malformed


def test_too_many_arrays_and_objects_are_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    monkeypatch.setattr(orjson, "loads", decoded.append)
    body = b'{"results":[' + b"{}," * MAX_JSON_CONTAINERS + b"{}]}"
    with pytest.raises(PayloadTooLarge, match="arrays and objects"):
        json_body(inbound("https://x", body=body))
    assert decoded == []

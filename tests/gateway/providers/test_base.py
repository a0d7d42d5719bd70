"""The plumbing every provider shares: ``Parsed.of`` quarantines what does not normalize, the
required-header and timestamp helpers answer with the right labels, and a JSON body's depth,
size and item count are refused before anything is decoded or normalized."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.errors import Malformed, PayloadTooLarge, Unauthenticated
from gateway.providers.base import (
    MAX_JSON_CONTAINERS,
    MAX_JSON_DEPTH,
    InboundRequest,
    InvalidItem,
    Parsed,
    build_request,
    check_json_shape,
    json_body,
)
from gateway.providers.bird import Bird, BirdCredentials
from tests.helpers.requests import inbound


def normalize(item: dict[str, str]) -> pb.DeliveryReport:
    if "id" not in item:
        raise InvalidItem("id is missing")
    return pb.DeliveryReport(message_id=item["id"])


def test_build_request_fills_every_field_as_the_dataclass_would() -> None:
    built = build_request(
        "POST",
        "https://hooks.example/webhooks/plivo?a=1&b=",
        [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-A", "1")],
        b"MessageUUID=m-1&Status=delivered",
        request_id="r-1",
        received_micros=5,
    )
    assert set(vars(built)) == {field.name for field in dataclasses.fields(InboundRequest)}
    assert built == InboundRequest(
        method="POST",
        url="https://hooks.example/webhooks/plivo?a=1&b=",
        path="/webhooks/plivo",
        headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8", "x-a": "1"},
        body=b"MessageUUID=m-1&Status=delivered",
        content_type="application/x-www-form-urlencoded",
        query=(("a", "1"), ("b", "")),
        form=(("MessageUUID", "m-1"), ("Status", "delivered")),
        received_micros=5,
        request_id="r-1",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.body = b""  # type: ignore[misc]


def test_parsed_of_keeps_reports_and_quarantines_the_rest() -> None:
    good = Parsed.of({"id": "m-1"}, normalize)
    assert [report.message_id for report in good.reports] == ["m-1"]
    assert good.quarantined == []
    several = Parsed.of({"id": "m-2"}, lambda item: [normalize(item), normalize(item)])
    assert len(several.reports) == 2
    bad = Parsed.of({"other": "x"}, normalize)
    assert bad.reports == []
    assert [(item.reason, item.raw) for item in bad.quarantined] == [
        ("id is missing", '{"other":"x"}')
    ]


def test_parsed_of_each_gathers_every_item_in_order() -> None:
    one = Parsed.of_each([{"id": "m-1"}], normalize)
    assert [report.message_id for report in one.reports] == ["m-1"]
    mixed = Parsed.of_each([{"id": "m-1"}, {"other": "x"}, {"id": "m-3"}], normalize)
    assert [report.message_id for report in mixed.reports] == ["m-1", "m-3"]
    assert [item.reason for item in mixed.quarantined] == ["id is missing"]


def test_provider_helpers_label_their_refusals() -> None:
    provider = Bird("", BirdCredentials(signing_key="k"), clock=lambda: 1_000_000.0)
    with pytest.raises(Unauthenticated, match="bird: no messagebird-signature header") as caught:
        provider.required_header(inbound("https://x.example/"), "messagebird-signature")
    assert caught.value.label == "missing"
    assert provider.check_timestamp("999990", "t", 60) == 999_990
    with pytest.raises(Unauthenticated) as stale:
        provider.check_timestamp("999000", "t", 60)
    assert stale.value.label == "stale"


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


def test_item_count_is_checked_against_the_endpoint_limit() -> None:
    provider = Bird("", BirdCredentials(signing_key=(SecretStr("k"),)))
    provider.max_items = 3
    provider.check_items(3)
    with pytest.raises(PayloadTooLarge, match="more than 3 reports"):
        provider.check_items(4)

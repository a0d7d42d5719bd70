"""The plumbing every provider shares: ``Parsed.of`` quarantines what does not normalize, the
required-header and timestamp helpers answer with the right labels, and a JSON body's depth,
size and item count are refused before anything is decoded or normalized."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import SecretStr

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.errors import PayloadTooLarge, Unauthenticated
from gateway.providers.base import (
    InboundRequest,
    InvalidItem,
    Parsed,
    build_request,
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


def test_item_count_is_checked_against_the_endpoint_limit() -> None:
    provider = Bird("", BirdCredentials(signing_key=(SecretStr("k"),)))
    provider.max_items = 3
    provider.check_items(3)
    with pytest.raises(PayloadTooLarge, match="more than 3 reports"):
        provider.check_items(4)

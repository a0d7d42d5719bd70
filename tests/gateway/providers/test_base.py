"""The plumbing every provider shares: ``Parsed.of`` quarantines what does not normalize, the
required-header and timestamp helpers answer with the right labels."""

from __future__ import annotations

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.errors import Unauthenticated
from gateway.providers.base import InvalidItem, Parsed
from gateway.providers.bird import Bird, BirdCredentials
from tests.helpers.requests import inbound


def normalize(item: dict[str, str]) -> pb.DeliveryReport:
    if "id" not in item:
        raise InvalidItem("id is missing")
    return pb.DeliveryReport(message_id=item["id"])


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


def test_provider_helpers_label_their_refusals() -> None:
    provider = Bird("", BirdCredentials(signing_key="k"), clock=lambda: 1_000_000.0)
    with pytest.raises(Unauthenticated, match="bird: no messagebird-signature header") as caught:
        provider.required_header(inbound("https://x.example/"), "messagebird-signature")
    assert caught.value.label == "missing"
    assert provider.check_timestamp("999990", "t", 60) == 999_990
    with pytest.raises(Unauthenticated) as stale:
        provider.check_timestamp("999000", "t", 60)
    assert stale.value.label == "stale"

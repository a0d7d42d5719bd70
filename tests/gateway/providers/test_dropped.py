"""Informational fields left out of reports: recorded per item while it is normalized, kept
only for the items that are stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dlrhub.v1 import delivery_report_pb2 as pb
from gateway.providers import dropped
from gateway.providers.base import InvalidItem, Parsed


def test_recording_collects_only_inside_its_block() -> None:
    dropped.drop("price", "outside: not recorded")
    with dropped.recording() as outer:
        dropped.drop("price", "price is not a number")
        with dropped.recording() as inner:
            dropped.drop("sender", "sender is not a string")
        dropped.drop("mcc_mnc", "mccMnc is not 5 or 6 digits")
    assert inner == [("sender", "sender is not a string")]
    assert outer == [("price", "price is not a number"), ("mcc_mnc", "mccMnc is not 5 or 6 digits")]


def test_only_informational_fields_can_be_dropped() -> None:
    assert "message_id" not in dropped.FIELDS
    assert "status" not in dropped.FIELDS
    with pytest.raises(ValueError, match="not one of the droppable fields"):
        dropped.drop("status", "x")


def test_parsed_of_keeps_the_drops_of_a_stored_item_and_none_of_a_quarantined_one() -> None:
    def lenient_then(fail: bool) -> Callable[[object], pb.DeliveryReport]:
        def normalize(item: object) -> pb.DeliveryReport:
            dropped.drop("event_time", "at is not a date-time")
            if fail:
                raise InvalidItem("status is missing")
            return pb.DeliveryReport(message_id="m")

        return normalize

    kept = Parsed.of({}, lenient_then(False))
    assert kept.dropped == [("event_time", "at is not a date-time")]
    refused = Parsed.of({}, lenient_then(True))
    assert refused.quarantined
    assert not refused.dropped

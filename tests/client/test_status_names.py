"""Canonical status names: the lower-case labels and the proto enum, both ways.

Covers dlrhub_common/status_names.py too: the server's modules read the same table."""

from __future__ import annotations

import pytest

from dlrhub import client
from dlrhub.client.status_names import BY_NAME, status_from_label, status_label
from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub_common import status_names


def test_every_status_but_unspecified_has_a_name() -> None:
    assert "unspecified" not in BY_NAME
    assert set(BY_NAME.values()) == set(pb.DeliveryStatus.values()) - {
        pb.DELIVERY_STATUS_UNSPECIFIED
    }
    assert BY_NAME["delivered"] == pb.DELIVERY_STATUS_DELIVERED


def test_labels_round_trip() -> None:
    for name, value in BY_NAME.items():
        assert status_label(value) == name
        assert status_from_label(name) == value


def test_label_of_unknown_values_is_unspecified() -> None:
    assert status_label(pb.DELIVERY_STATUS_UNSPECIFIED) == "unspecified"
    assert status_label(999) == "unspecified"


def test_from_label_accepts_any_case_and_the_prefix() -> None:
    assert status_from_label(" Delivered ") == pb.DELIVERY_STATUS_DELIVERED
    assert status_from_label("DELIVERY_STATUS_SENT") == pb.DELIVERY_STATUS_SENT
    with pytest.raises(KeyError):
        status_from_label("unspecified")
    with pytest.raises(KeyError):
        status_from_label("arrived")


def test_the_server_reads_the_client_table() -> None:
    assert status_names.BY_NAME is BY_NAME
    assert status_names.status_label is status_label
    assert client.status_from_label is status_from_label


def test_reports_may_carry_every_status_but_no_report() -> None:
    assert "no_report" in BY_NAME
    assert "no_report" not in status_names.REPORTED_BY_NAME
    assert set(status_names.REPORTED_BY_NAME) == set(BY_NAME) - {"no_report"}

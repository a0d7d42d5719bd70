"""Canonical status names as people and labels write them: ``delivered``, ``undelivered``, ...

The proto enum ``DELIVERY_STATUS_DELIVERED`` is the wire form; these lower-case names are what
metrics labels, the CLI, logs and the Standard Webhooks payload use.
"""

from __future__ import annotations

from dlrhub.v1 import delivery_report_pb2 as pb

_PREFIX = "DELIVERY_STATUS_"

#: ``{"accepted": DELIVERY_STATUS_ACCEPTED, ...}`` without UNSPECIFIED.
BY_NAME: dict[str, pb.DeliveryStatus.ValueType] = {
    name.removeprefix(_PREFIX).lower(): value
    for name, value in pb.DeliveryStatus.items()
    if value != pb.DELIVERY_STATUS_UNSPECIFIED
}
_BY_VALUE = {value: name for name, value in BY_NAME.items()}


def status_label(status: int) -> str:
    """``DELIVERY_STATUS_DELIVERED`` → ``delivered``; ``unspecified`` for anything else."""
    return _BY_VALUE.get(pb.DeliveryStatus.ValueType(status), "unspecified")


def status_from_label(name: str) -> pb.DeliveryStatus.ValueType:
    """``delivered`` (any case, with or without the prefix) → the enum value; KeyError if none."""
    key = name.strip().lower().removeprefix(_PREFIX.lower())
    return BY_NAME[key]

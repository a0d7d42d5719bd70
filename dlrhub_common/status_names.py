"""Canonical status names (``delivered``, ``undelivered``, ...), for the server's modules.

They live in the client distribution (``dlrhub.client.status_names``), which the server
depends on: consumers of the client and the server's labels, CLI and logs share one table.
"""

from __future__ import annotations

from dlrhub.client.status_names import BY_NAME, status_from_label, status_label
from dlrhub.v1 import delivery_report_pb2 as pb

#: The statuses a provider's report may carry: all but ``no_report``, which only statusd
#: sets (a registered message whose report timeout passed).
REPORTED_BY_NAME: dict[str, pb.DeliveryStatus.ValueType] = {
    name: value for name, value in BY_NAME.items() if value != pb.DELIVERY_STATUS_NO_REPORT
}

__all__ = ["BY_NAME", "REPORTED_BY_NAME", "status_from_label", "status_label"]

"""Canonical status names (``delivered``, ``undelivered``, ...), for the server's modules.

They live in the client distribution (``dlrhub.client.status_names``), which the server
depends on: consumers of the client and the server's labels, CLI and logs share one table.
"""

from __future__ import annotations

from dlrhub.client.status_names import BY_NAME, status_from_label, status_label

__all__ = ["BY_NAME", "status_from_label", "status_label"]

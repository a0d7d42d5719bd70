"""Former home of the signature primitives, now in :mod:`gateway.auth`; only the Basic
header builder stays importable here for callers not yet moved to :mod:`gateway.auth.basic`."""

from __future__ import annotations

from gateway.auth.basic import authorization as basic_authorization

__all__ = ["basic_authorization"]

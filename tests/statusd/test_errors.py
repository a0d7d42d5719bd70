"""The one table that maps statusd's expected errors to gRPC codes."""

from __future__ import annotations

import grpc

from statusd import errors
from statusd.storage.base import InvalidPosition, StoreUnavailable


def test_store_errors_have_their_codes() -> None:
    assert errors.grpc_code(StoreUnavailable("down")) == grpc.StatusCode.UNAVAILABLE
    assert errors.grpc_code(InvalidPosition("stale")) == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.grpc_code(ValueError("a bug")) is None

"""Admission control: how much one gateway holds at once, so that a flood (or statusd
pausing while webhooks keep coming) costs bounded memory, and the excess is told at once to
come back later instead of piling up.

Three bounds, each answered 503 with ``Retry-After`` (the provider retries; nothing is lost):

- open connections (``DLRHUB_MAX_CONNECTIONS``): :class:`CappedHttpProtocol` answers a
  connection beyond the cap with a canned 503 and closes it before reading anything;
- webhook requests in flight (``DLRHUB_MAX_REQUESTS_IN_FLIGHT``): :meth:`Admission.enter`,
  before the body is read;
- reports queued for statusd (``DLRHUB_MAX_QUEUED_REPORTS``): checked here before the body is
  read, and again by :meth:`gateway.coalescer.Coalescer.submit` for the request's own reports.

A request refused before its body was read also loses its connection (the body is not
drained: a slow upload must not keep holding it).
"""

from __future__ import annotations

from typing import Any

from sanic.server.protocols.http_protocol import HttpProtocol

from gateway.coalescer import Coalescer
from gateway.errors import RETRY_AFTER_SECONDS, Overloaded


class Admission:
    """Counts the webhook requests in flight; refuses one more when full."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def enter(self, coalescer: Coalescer) -> None:
        """Takes a slot (give it back with :meth:`leave`); raises Overloaded when every slot
        is taken or statusd's queue is full."""
        if self.in_flight >= self.max_in_flight:
            raise Overloaded(f"{self.in_flight} requests are in flight; retry later")
        if coalescer.full():
            raise Overloaded(f"{coalescer.queued} reports are waiting for statusd; retry later")
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1


_REFUSAL = b'{"error":"overloaded","reason":"too many open connections; retry later"}'
#: The whole answer to a connection beyond the cap, written before anything is read.
REFUSED_CONNECTION = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    + f"retry-after: {RETRY_AFTER_SECONDS}\r\n".encode()
    + f"content-length: {len(_REFUSAL)}\r\n".encode()
    + b"connection: close\r\n\r\n"
    + _REFUSAL
)


class CappedHttpProtocol(HttpProtocol):
    """Sanic's HTTP/1.1 protocol, answering a connection beyond ``DLRHUB_MAX_CONNECTIONS``
    (all of the server's open connections, counted by Sanic) with :data:`REFUSED_CONNECTION`
    and closing it. Serve the app with ``protocol=CappedHttpProtocol``."""

    __slots__ = ("refused",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refused = False

    def connection_made(self, transport: Any) -> None:
        if len(self.connections) >= self.app.ctx.config.settings.max_connections:
            self.refused = True
            transport.write(REFUSED_CONNECTION)
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.refused:
            super().connection_lost(exc)  # type: ignore[no-untyped-call]

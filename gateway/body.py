"""Reading a webhook's body: at most a size limit (413), within a deadline (408).

Webhook routes are streamed, so Sanic checks neither: its request timeout covers only the
headers, and a client trickling its body would otherwise hold a handler for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Request

from gateway.errors import PayloadTooLarge, RequestTimeout


async def receive(
    request: Request,
    limit: int,
    timeout: float,
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """Reads the body into ``request.body``: at most ``limit`` bytes (413), within ``timeout``
    seconds (408); either way the connection is then closed. The deadline is one timer handle
    that cancels the handler (cheaper than asyncio.timeout on the hot path). ``loop``, the
    running loop, saves looking it up (a system call each time before Python 3.12)."""
    declared = request.headers.get("content-length", "")
    stream: Any = request.stream  # Sanic's Http; untyped
    loop = loop or asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if task is not None:
            task.cancel()

    deadline = loop.call_later(timeout, expire)
    try:
        request.body = await read_limited(stream, declared, limit)
    except (asyncio.CancelledError, PayloadTooLarge) as exc:
        if isinstance(exc, asyncio.CancelledError) and not expired:
            raise  # cancelled for another reason (the client left, shutdown)
        drop_connection(request)
        if isinstance(exc, PayloadTooLarge):
            raise
        if task is not None:
            task.uncancel()
        raise RequestTimeout(f"the body did not arrive within {timeout:g} s") from None
    finally:
        deadline.cancel()


def drop_connection(request: Request) -> None:
    """Closes the connection shortly after the answer to a request whose body was not read
    (whole): Sanic would otherwise read and discard the rest, at the client's pace."""
    stream: Any = request.stream
    if stream is not None:
        stream.keep_alive = False
    asyncio.get_running_loop().call_later(0.2, request.transport.close)


async def read_limited(stream: Any, declared: str, limit: int) -> bytes:
    """The whole body from ``stream`` (anything with an async ``read()`` that returns None at
    the end), refusing more than ``limit`` bytes, declared (``Content-Length``) or received."""
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while (chunk := await stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

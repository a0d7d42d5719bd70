"""Reading a webhook's body (gateway/body.py): the size limit, declared or streamed, and the
deadline, for the reader alone and over real HTTP (413 or 408, then the connection closed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.body import read_limited
from gateway.errors import PayloadTooLarge
from tests.gateway.conftest import StackFactory
from tests.gateway.test_intake import BASIC


class Chunks:
    """A stream like Sanic's: ``read()`` gives the next chunk, then None."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self) -> bytes | None:
        return self.chunks.pop(0) if self.chunks else None


async def test_the_whole_body_up_to_the_limit() -> None:
    assert await read_limited(Chunks(b"ab", b"cd"), "4", limit=4) == b"abcd"
    assert await read_limited(Chunks(), "", limit=4) == b""


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    stream = Chunks(b"a")
    with pytest.raises(PayloadTooLarge, match="larger than 4 bytes"):
        await read_limited(stream, "5", limit=4)
    assert stream.chunks == [b"a"]


async def test_a_stream_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_limited(Chunks(b"abc", b"de"), "", limit=4)


async def test_oversized_bodies_get_413_declared_or_chunked(make_stack: StackFactory) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async with make_stack(max_body_bytes=4096) as stack:
        headers = {**BASIC, "Content-Type": "application/json"}
        for content in (b" " * 5000, chunked()):
            response = await stack.http.post("/webhooks/infobip", content=content, headers=headers)
            assert response.status_code == 413
            assert response.json() == {
                "error": "too_large",
                "reason": "body is larger than 4096 bytes",
            }


async def test_slow_client_is_cut_off(make_stack: StackFactory) -> None:
    async with make_stack(request_timeout_seconds=0.5) as stack:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
        writer.write(b"POST /webhooks/infobip HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)  # until the server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"connection: close" in answer
        assert b"request_timeout" in answer

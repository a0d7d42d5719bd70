"""Admission control (gateway/admission.py) over real HTTP: beyond the requests in flight, the
reports queued for statusd or the open connections it may hold, the gateway answers 503 with
``Retry-After`` at once, without reading the body, and closes the connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from gateway.admission import REFUSED_CONNECTION
from tests.gateway.conftest import ENV, PUBLIC_URL, StackFactory
from tests.gateway.test_intake import BASIC, infobip_body
from tests.helpers.servers import running_gateway

HEAD = "POST /webhooks/infobip HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def head(length: int) -> bytes:
    auth = "".join(f"{name}: {value}\r\n" for name, value in BASIC.items())
    return f"{HEAD}{auth}Content-Length: {length}\r\n\r\n".encode()


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer: status, headers (lower-case names), body."""
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers["content-length"]))


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def test_beyond_the_requests_in_flight_503_before_the_body(
    make_stack: StackFactory,
) -> None:
    body = infobip_body("in-flight")
    async with make_stack(max_requests_in_flight=1) as stack:
        port = stack.gateway.port
        async with connection(port) as (first, first_out), connection(port) as (second, out):
            first_out.write(head(len(body)))  # holds the only slot while its body is awaited
            await first_out.drain()
            await asyncio.sleep(0.2)
            out.write(head(len(body)))  # no body sent: answered all the same
            status, headers, refusal = await asyncio.wait_for(answer(second), 5)
            assert status == 503
            assert headers["retry-after"].isdigit()
            assert json.loads(refusal)["error"] == "overloaded"
            assert await asyncio.wait_for(second.read(), 5) == b""  # connection closed
            first_out.write(body)
            assert (await asyncio.wait_for(answer(first), 5))[0] == 200
        assert stack.gateway.app.ctx.admission.in_flight == 0
        again = {**BASIC, "Content-Type": "application/json"}
        assert (
            await stack.http.post("/webhooks/infobip", content=infobip_body("again"), headers=again)
        ).is_success


@contextlib.contextmanager
def silent_statusd() -> Iterator[str]:
    """A statusd double that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


async def test_beyond_the_reports_queued_for_statusd_503_at_once(tmp_path: Path) -> None:
    body = infobip_body("queued")
    with silent_statusd() as target:
        async with running_gateway(
            ENV,
            target,
            public_url=PUBLIC_URL,
            max_queued_reports=1,
            ingest_deadline_seconds=3.0,
        ) as gateway:
            port = gateway.port
            async with connection(port) as (first, first_out), connection(port) as (second, out):
                first_out.write(head(len(body)) + body)  # queued, statusd never answers
                await first_out.drain()
                for _ in range(50):
                    if gateway.app.ctx.coalescer.full():
                        break
                    await asyncio.sleep(0.05)
                out.write(head(len(body)))
                status, headers, refusal = await asyncio.wait_for(answer(second), 2)
                assert (status, json.loads(refusal)["error"]) == (503, "overloaded")
                assert "waiting for statusd" in json.loads(refusal)["reason"]
                assert headers["retry-after"].isdigit()
                assert (await asyncio.wait_for(answer(first), 10))[0] == 503  # never confirmed
            assert gateway.app.ctx.coalescer.queued == 0


async def test_beyond_the_open_connections_503_and_closed(make_stack: StackFactory) -> None:
    async with make_stack(max_connections=2) as stack:
        port = stack.gateway.port
        async with connection(port), connection(port):
            await asyncio.sleep(0.1)
            async with connection(port) as (third, _):
                refused = await asyncio.wait_for(third.read(), 5)
            assert refused == REFUSED_CONNECTION
            assert b"503" in refused.split(b"\r\n")[0]
            assert b"retry-after: " in refused
        await asyncio.sleep(0.1)
        assert (await stack.http.get("/healthz")).status_code == 200  # room again

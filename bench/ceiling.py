"""The ceiling: a bare Sanic POST handler answering 200, one worker, under the same wrk
settings as the real gateway. It echoes X-Request-Id like the gateway, so the same wrk
script drives both.

Given a second port, it is the transport floor instead: each webhook's one report goes
through the gateway's own :class:`~gateway.coalescer.Coalescer` in a unary IngestReports call
to :mod:`bench.hop` on that port, and is answered when the call returns."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from gateway.coalescer import Coalescer

app: Sanic[Any, Any] = Sanic("dlrhub-bench-ceiling", configure_logging=False)
HOP_PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0


@app.before_server_start
async def connect(app: Sanic[Any, Any]) -> None:
    if not HOP_PORT:
        return
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{HOP_PORT}")
    stub = ingest_grpc.IngestServiceStub(channel)

    async def send(
        reports: list[pb.DeliveryReport], quarantined: list[pb.QuarantinedItem]
    ) -> ingest_pb.IngestReportsResponse:
        request = ingest_pb.IngestReportsRequest(reports=reports, quarantined_items=quarantined)
        return await stub.IngestReports(request, timeout=5.0)

    app.ctx.coalescer = Coalescer(send)


@app.post("/webhooks/<provider:str>")
async def accept(request: Request, provider: str) -> HTTPResponse:
    if HOP_PORT:
        first = json.loads(request.body)["results"][0]
        report = pb.DeliveryReport(provider=provider, message_id=first["messageId"])
        await request.app.ctx.coalescer.submit([report])
    return json_response({"request_id": request.headers.get("x-request-id", "")})


@app.get("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    return json_response({"status": "ok"})


if __name__ == "__main__":
    app.run(
        host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False, motd=False
    )

"""The ceiling: a bare Sanic POST handler answering 200, one worker, under the same wrk
settings as the real gateway. It echoes X-Request-Id like the gateway, so the same wrk
script drives both."""

from __future__ import annotations

import sys
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

app: Sanic[Any, Any] = Sanic("dlrhub-bench-ceiling", configure_logging=False)


@app.post("/webhooks/<provider:str>")
async def accept(request: Request, provider: str) -> HTTPResponse:
    return json({"request_id": request.headers.get("x-request-id", "")})


@app.get("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    return json({"status": "ok"})


if __name__ == "__main__":
    app.run(
        host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False, motd=False
    )

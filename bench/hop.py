"""The transport floor's far end: an IngestService that answers every report STORED and
keeps nothing. With :mod:`bench.ceiling` forwarding to it, a webhook costs what this design's
transport costs (Sanic, the coalescer, one unary gRPC call) without any of dlrhub's work:
no verification, normalization, metrics or store."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from dlrhub.v1 import ingest_service_pb2 as ingest_pb


async def ingest_reports(
    request: ingest_pb.IngestReportsRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> ingest_pb.IngestReportsResponse:
    count = len(request.reports)
    return ingest_pb.IngestReportsResponse(
        stored=count, outcomes=[ingest_pb.INGEST_OUTCOME_STORED] * count
    )


async def serve(port: int) -> None:
    server = grpc.aio.server()
    method = grpc.unary_unary_rpc_method_handler(
        ingest_reports,
        request_deserializer=ingest_pb.IngestReportsRequest.FromString,
        response_serializer=ingest_pb.IngestReportsResponse.SerializeToString,
    )
    service = ingest_pb.DESCRIPTOR.services_by_name["IngestService"].full_name
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {"IngestReports": method}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

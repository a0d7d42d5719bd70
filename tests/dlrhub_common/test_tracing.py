"""When traces are on: only with an OTLP endpoint in the standard variables. Off, a process
imports nothing of the SDK and installs no tracer provider; on, spans reach a real OTLP/gRPC
collector (one in this test) under the default or the configured service name, and the SDK
reads the sampler itself. OTEL_* variables never trip the strict DLRHUB_* check."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp

from dlrhub_common.config_names import check_environment
from dlrhub_common.tracing import configured

#: A process that sets traces up as gateway/__main__.py does, makes one span, and says what
#: it got; its exit flushes the span to the endpoint.
PROBE = """
import json, sys
from opentelemetry import trace
from dlrhub_common import tracing
import gateway.app, statusd.server  # and with them gateway.tracing and statusd.tracing
SDK = ("opentelemetry.sdk", "opentelemetry.exporter")
on = tracing.setup("dlrhub-gateway")
if tracing.tracer is not None:
    with tracing.tracer.start_as_current_span("probe"):
        pass
provider = trace.get_tracer_provider()
resource = getattr(provider, "resource", None)
print(json.dumps({
    "on": on,
    "provider": type(provider).__name__,
    "sampler": provider.sampler.get_description() if on else None,
    "service": resource.attributes.get("service.name") if resource else None,
    "sdk": sorted(m for m in sys.modules if m.startswith(SDK)),
}))
"""


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "dlr", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "True"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_need_an_endpoint(environ: dict[str, str], on: bool) -> None:
    assert configured(environ) is on


def test_otel_variables_pass_the_strict_configuration_check() -> None:
    check_environment(
        {"DLRHUB_READ_TOKENS"},
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
            "OTEL_SERVICE_NAME": "dlrhub",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
        },
    )


class Collector:
    """An OTLP/gRPC trace collector on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[otlp.ExportTraceServiceRequest] = []
        self.server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self.export,
            request_deserializer=otlp.ExportTraceServiceRequest.FromString,
            response_serializer=otlp.ExportTraceServiceResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
                )
            ]
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def export(
        self, request: otlp.ExportTraceServiceRequest, context: Any
    ) -> otlp.ExportTraceServiceResponse:
        self.received.append(request)
        return otlp.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, str]]:
        """(service.name, span name) of every span received."""
        found = []
        for request in self.received:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    found += [(attributes["service.name"], s.name) for s in scope_spans.spans]
        return found


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    started = Collector()
    await started.server.start()
    try:
        yield started
    finally:
        await started.server.stop(grace=None)


async def probe(environ: dict[str, str]) -> dict[str, Any]:
    """Runs :data:`PROBE` with ``environ`` as its only OTEL_* variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        env={**env, **environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


async def test_without_an_endpoint_nothing_is_installed() -> None:
    result = await probe({"OTEL_SERVICE_NAME": "dlr", "OTEL_TRACES_SAMPLER": "always_on"})
    assert result == {
        "on": False,
        "provider": "ProxyTracerProvider",
        "sampler": None,
        "service": None,
        "sdk": [],
    }


async def test_with_an_endpoint_spans_reach_the_collector(collector: Collector) -> None:
    endpoint = f"http://127.0.0.1:{collector.port}"
    result = await probe({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert (result["on"], result["provider"]) == (True, "TracerProvider")
    assert result["service"] == "dlrhub-gateway"
    assert result["sampler"].startswith("ParentBased{root:AlwaysOnSampler,")  # default
    assert collector.spans() == [("dlrhub-gateway", "probe")]


async def test_the_sdk_reads_the_service_name_and_sampler(collector: Collector) -> None:
    result = await probe(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_SERVICE_NAME": "dlr-edge",
            "OTEL_TRACES_SAMPLER": "always_off",
        }
    )
    assert (result["on"], result["service"], result["sampler"]) == (
        True,
        "dlr-edge",
        "AlwaysOffSampler",
    )
    assert collector.spans() == []  # sampled out

"""OpenTelemetry traces: off unless an OTLP endpoint is configured.

:func:`setup` turns traces on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (and neither ``OTEL_SDK_DISABLED=true`` nor
``OTEL_TRACES_EXPORTER=none`` says otherwise). It then installs the SDK's tracer provider,
exporting spans in batches over OTLP/gRPC; the SDK reads every other standard variable itself:
``OTEL_SERVICE_NAME`` (default ``dlrhub-gateway`` or ``dlrhub-statusd``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` and ``_ARG``, ``OTEL_EXPORTER_OTLP_*``
(headers, certificate, insecure, timeout), ``OTEL_BSP_*``; ``OTEL_PROPAGATORS`` picks the
propagators (W3C trace context by default).

Off, nothing of the SDK is imported, no provider is installed, and every hook costs one check
of :data:`tracer`. The hooks are in :mod:`gateway.tracing` and :mod:`statusd.tracing`; span
attributes never carry a phone number, a message id or a message body (docs/security.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

#: The variables that name where spans go; tracing is off without one of them.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: The instrumentation scope of every dlrhub span.
SCOPE = "dlrhub"

#: The tracer of dlrhub's spans while traces are on; None while they are off.
tracer: trace.Tracer | None = None


def configured(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for traces (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def setup(service_name: str) -> bool:
    """Turns traces on when the environment configures an OTLP endpoint; returns whether it
    did. ``service_name`` is the default ``service.name`` (``OTEL_SERVICE_NAME`` wins)."""
    if not configured(os.environ):
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # flushed and shut down at exit
    start(provider)
    endpoint = next(os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name))
    log.info(
        "traces on",
        extra={"endpoint": endpoint, "service": resource.attributes.get(SERVICE_NAME)},
    )
    return True


def start(provider: trace.TracerProvider) -> None:
    """Sends dlrhub's spans to ``provider`` (:func:`setup`'s, or a test's)."""
    global tracer  # noqa: PLW0603 - one process-wide switch, set at start-up
    tracer = provider.get_tracer(SCOPE)


def stop() -> None:
    """Turns the hooks off again (for tests; a process keeps its choice)."""
    global tracer  # noqa: PLW0603 - one process-wide switch, set at start-up
    tracer = None


def inject(carrier: dict[str, str]) -> None:
    """Adds the current span's context to ``carrier`` (``traceparent``, ``tracestate``)."""
    from opentelemetry import propagate

    propagate.inject(carrier)


def extract(pairs: Iterable[tuple[str, str | bytes]]) -> Context:
    """The context that request headers or gRPC metadata carry (an empty one when none)."""
    from opentelemetry import propagate

    carrier = {key.lower(): value for key, value in pairs if isinstance(value, str)}
    return propagate.extract(carrier)


@contextlib.contextmanager
def span(
    tracer: trace.Tracer,
    name: str,
    *,
    context: Context,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    links: Sequence[trace.Link] = (),
    attributes: Attributes = None,
) -> Iterator[trace.Span]:
    """A current span, child of ``context``, that marks a failure with the exception's type
    only: no exception event, no message (messages may quote a request or a store's data)."""
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            current.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise

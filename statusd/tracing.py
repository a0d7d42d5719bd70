"""statusd's spans (traces are on only with an OTLP endpoint: :mod:`dlrhub_common.tracing`).

* ``dlrhub.v1.IngestService/IngestReports`` and every other unary call of dlrhub's services
  (SERVER; not health checks or reflection): one per call, by :class:`TracingInterceptor`,
  child of the W3C trace context (``traceparent``) in the call's metadata: for IngestReports,
  the gateway's call span. Attributes: ``rpc.system``, ``rpc.service``, ``rpc.method``,
  ``rpc.grpc.status_code``.
* ``store.commit`` (INTERNAL): one per group commit (:func:`commit`). Several IngestReports
  calls share a commit: its span is a child of the first call's span and links to the others,
  each of which gets a link back to it. Attributes: ``dlrhub.store``, ``dlrhub.reports``,
  ``dlrhub.calls``.
* ``dlrhub.v1.StatusService/WatchMessageStatuses send`` (PRODUCER): one per change written
  to a Watch stream (:func:`delivery`), child of the IngestReports span that carried the
  change's report, so it is in the webhook's trace. Changes reach the streams from the
  store's change log, not from the commit: the committer keeps, in memory, the span context
  of the last :data:`RECENT` reports it committed (:func:`committed`), and a stream looks its
  change up there when it writes it. A change another replica committed, or one older than
  that, is written without a span. Attributes: ``dlrhub.provider``, ``dlrhub.status``.

No attribute holds a phone number, a message id or a body, and no span records an exception
or its message (they may quote a request or stored data): a failed span says only the
exception's type (:func:`dlrhub_common.tracing.span`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeAlias, cast

import grpc
from opentelemetry import trace

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub_common import tracing
from dlrhub_common.status_names import status_label
from statusd.storage.base import Change, Outcome

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
_Key = tuple[str, str, str, str]

#: Committed reports whose IngestReports span a Watch delivery can still find.
RECENT = 10_000
#: Codes that mark a server span as failed (OpenTelemetry's gRPC conventions).
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
WATCH_SEND = "dlrhub.v1.StatusService/WatchMessageStatuses send"
#: The methods traced: dlrhub's own (probes and reflection would only add noise).
TRACED_PREFIX = "/dlrhub.v1."

_recent: OrderedDict[_Key, trace.SpanContext] = OrderedDict()
_NOTHING = contextlib.nullcontext()


def interceptors() -> list[grpc.aio.ServerInterceptor]:
    """statusd's tracing interceptor while traces are on; none while they are off."""
    return [TracingInterceptor()] if tracing.tracer is not None else []


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span around every unary call of dlrhub's services, in the caller's trace."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or tracing.tracer is None
            or not handler_call_details.method.startswith(TRACED_PREFIX)
        ):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _traced(cast(_Behavior, handler.unary_unary), handler_call_details),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _traced(behavior: _Behavior, details: grpc.HandlerCallDetails) -> _Behavior:
    method = details.method.lstrip("/")
    service, _, name = method.partition("/")

    async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        tracer = tracing.tracer
        if tracer is None:
            return await behavior(request, context)
        code = grpc.StatusCode.OK
        with tracer.start_as_current_span(
            method,
            context=tracing.extract(details.invocation_metadata or ()),
            kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await behavior(request, context)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                raise
            else:
                code = context.code() or grpc.StatusCode.OK
            finally:
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_ERRORS:
                    span.set_status(trace.StatusCode.ERROR, code.name)
        return response

    return traced


def current() -> trace.Span | None:
    """The current call's span (None while traces are off or outside a traced call)."""
    if tracing.tracer is None:
        return None
    span = trace.get_current_span()
    return span if span.get_span_context().is_valid else None


@contextlib.contextmanager
def commit(store: str, calls: Sequence[trace.Span | None], reports: int) -> Iterator[None]:
    """A span for one group commit of ``calls`` (their spans from :func:`current`); nothing
    while traces are off or no call is traced."""
    tracer = tracing.tracer
    spans = [span for span in calls if span is not None]
    if tracer is None or not spans:
        yield
        return
    with tracing.span(
        tracer,
        "store.commit",
        context=trace.set_span_in_context(spans[0]),
        links=[trace.Link(span.get_span_context()) for span in spans[1:]],
        attributes={"dlrhub.store": store, "dlrhub.reports": reports, "dlrhub.calls": len(calls)},
    ) as span:
        for call in spans[1:]:
            call.add_link(span.get_span_context())
        yield


def _key(report: pb.DeliveryReport) -> _Key:
    return (report.provider, report.account, report.message_id, report.event_id)


def committed(
    span: trace.Span | None, reports: Sequence[pb.DeliveryReport], outcomes: Sequence[Outcome]
) -> None:
    """Remembers ``span`` (an IngestReports call's) for the changes its reports made."""
    if span is None:
        return
    context = span.get_span_context()
    for report, outcome in zip(reports, outcomes, strict=True):
        if outcome != ingest_pb.INGEST_OUTCOME_DUPLICATE:  # a duplicate made no change
            key = _key(report)
            _recent[key] = context
            _recent.move_to_end(key)
    while len(_recent) > RECENT:
        _recent.popitem(last=False)


def delivery(change: Change | None) -> contextlib.AbstractContextManager[Any]:
    """A span for writing ``change`` to a Watch stream, in the trace of the call that
    carried its report; nothing for a heartbeat, an unknown change or while traces are off."""
    tracer = tracing.tracer
    if tracer is None or change is None:
        return _NOTHING
    found = _recent.get(_key(change.report))
    if found is None:
        return _NOTHING
    return tracing.span(
        tracer,
        WATCH_SEND,
        context=trace.set_span_in_context(trace.NonRecordingSpan(found)),
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "dlrhub.provider": change.report.provider,
            "dlrhub.status": status_label(change.message_status.status),
        },
    )


def forget() -> None:
    """Drops the remembered spans (tests)."""
    _recent.clear()

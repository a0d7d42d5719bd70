"""Every Prometheus metric statusd exports, in one place (served on its own metrics port).

The gRPC server metrics carry the names and labels of go-grpc-prometheus and
py-grpc-prometheus (``grpc_server_started_total``, ``grpc_server_handled_total``,
``grpc_server_handling_seconds``), so dashboards made for any gRPC service work here. They
are recorded by :class:`GrpcMetrics`, the outermost server interceptor: every call counts,
the refused ones (bad token) and the streams (a Watch stream counts when it ends, with the
code it ended with) included. No ``_created`` series: they double the series count and no
query here uses them.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

import grpc
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub_common.status_names import status_label
from statusd import model

disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

_CALL_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter("grpc_server_started_total", "gRPC calls started on statusd.", _CALL_LABELS)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls completed by statusd (a stream when it ends), by status code.",
    [*_CALL_LABELS, "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time from a gRPC call's start to its end (for a stream: how long it stayed open).",
    _CALL_LABELS,
    buckets=_LATENCY_BUCKETS,
)
REPORTS = Counter(
    "dlrhub_ingest_reports_total",
    "Reports ingested, by provider, canonical status and outcome (stored, duplicate, stale).",
    ["provider", "status", "outcome"],
)
QUARANTINED = Counter(
    "dlrhub_quarantined_items_total",
    "Authentic items that failed validation and were kept raw, by provider.",
    ["provider"],
)
COMMIT_LATENCY = Histogram(
    "dlrhub_store_commit_seconds",
    "Time one durable store commit (one group-commit batch) took.",
    ["store"],
    buckets=_LATENCY_BUCKETS,
)
COMMIT_ERRORS = Counter(
    "dlrhub_store_commit_errors_total",
    "Store commits that failed; their callers were answered UNAVAILABLE.",
    ["store"],
)
BATCH_REPORTS = Histogram(
    "dlrhub_group_commit_reports",
    "Reports per group-commit batch.",
    buckets=_SIZE_BUCKETS,
)
BATCH_CALLS = Histogram(
    "dlrhub_group_commit_calls",
    "IngestReports calls gathered into one group-commit batch.",
    buckets=_SIZE_BUCKETS,
)
REGISTRATIONS = Counter(
    "dlrhub_registrations_total",
    "Registrations (RegisterMessages), by provider and outcome (registered, duplicate).",
    ["provider", "outcome"],
)
REPORT_TIMEOUTS = Counter(
    "dlrhub_report_timeouts_total",
    "Registered messages that became NO_REPORT (no final report within their timeout).",
    ["provider"],
)
RECEIPT_LATENCY = Histogram(
    "dlrhub_receipt_latency_seconds",
    "From a registered message's submit time to the final report that set its status.",
    ["provider"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 259200),
)
RECEIPT_LATENCY_BY_COUNTRY = Histogram(
    "dlrhub_receipt_latency_by_country_seconds",
    "From a registered message's submit time to the final report that set its status, by "
    "destination country (ISO 3166-1 alpha-2; empty when unknown).",
    ["country"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 259200),
)
FINAL_REPORTS = Counter(
    "dlrhub_final_reports_total",
    "Final reports (a terminal status or UNKNOWN) that set a message's status, by provider, "
    "destination country (ISO 3166-1 alpha-2 from the report's recipient; empty when the "
    "report names none) and status: the delivery rate by provider and country.",
    ["provider", "country", "status"],
)
STORE_UP = Gauge("dlrhub_store_up", "1 when the store answers, 0 when it does not.", ["store"])
WATCHERS = Gauge("dlrhub_watchers", "Open WatchMessageStatuses streams.")
QUARANTINE_SIZE = Gauge("dlrhub_quarantine_items", "Items waiting in quarantine.")


@lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (``labels()`` checks and locks
    on every call; every label here takes a bounded set of values)."""
    return metric.labels(*labels)


@lru_cache(maxsize=64)
def outcome_label(outcome: int) -> str:
    """``INGEST_OUTCOME_STORED`` → ``stored``."""
    return ingest_pb.IngestOutcome.Name(outcome).removeprefix("INGEST_OUTCOME_").lower()  # type: ignore[arg-type]


def count_final_reports(reports: Sequence[pb.DeliveryReport], outcomes: Sequence[int]) -> None:
    """Counts the committed final reports that became their message's current status."""
    for report, outcome in zip(reports, outcomes, strict=True):
        if outcome == ingest_pb.INGEST_OUTCOME_STORED and model.final_time(report) is not None:
            country = model.country_of(report.recipient)
            child(FINAL_REPORTS, report.provider, country, status_label(report.status)).inc()


_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]]"
_Context = grpc.aio.ServicerContext[Any, Any]
#: grpc_type per (request_streaming, response_streaming), as go-grpc-prometheus names them.
_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}
_FACTORIES = {
    "unary": ("unary_unary", grpc.unary_unary_rpc_method_handler),
    "client_stream": ("stream_unary", grpc.stream_unary_rpc_method_handler),
    "server_stream": ("unary_stream", grpc.unary_stream_rpc_method_handler),
    "bidi_stream": ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


class _Call:
    """One call's labels and start time; :meth:`ended` records how it ended."""

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.started = time.perf_counter()
        GRPC_STARTED.labels(*labels).inc()

    def ended(self, context: _Context, failed: grpc.StatusCode | None) -> None:
        """``failed``: the code of the exception that ended the call (None: it returned)."""
        code = failed or context.code() or grpc.StatusCode.OK
        if not isinstance(code, grpc.StatusCode):  # set as a number through the context
            code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
        GRPC_HANDLED.labels(*self.labels, code.name).inc()
        GRPC_LATENCY.labels(*self.labels).observe(time.perf_counter() - self.started)


def _failure(error: BaseException, context: _Context) -> grpc.StatusCode | None:
    """The code a call ends with when ``error`` ends it (None: the code its context holds).
    Only the code is kept, never the exception: a local holding it would tie the exception's
    traceback to the frame that holds it, a reference cycle left to the garbage collector for
    every call that fails or is cancelled (thousands of Watch streams that end together)."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED  # the client left (a Watch stream, typically)
    if isinstance(error, grpc.aio.AbortError):
        return None  # aborted with the code set on the context
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an unhandled exception


def _measured(behavior: Callable[..., Any], labels: tuple[str, str, str]) -> Callable[..., Any]:
    """``behavior`` (a coroutine function, or an async generator function for a streaming
    response) recording the call's metrics."""
    if inspect.isasyncgenfunction(behavior):

        async def streamed(request: Any, context: _Context) -> AsyncIterator[Any]:
            call, failed = _Call(labels), None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as exc:
                failed = _failure(exc, context)
                raise
            finally:
                call.ended(context, failed)

        return streamed

    async def answered(request: Any, context: _Context) -> Any:
        call, failed = _Call(labels), None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            failed = _failure(exc, context)
            raise
        finally:
            call.ended(context, failed)

    return answered


class GrpcMetrics(grpc.aio.ServerInterceptor):
    """Records the ``grpc_server_*`` metrics of every call (install it first, outermost)."""

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        kind = _TYPES[(handler.request_streaming, handler.response_streaming)]
        attribute, factory = _FACTORIES[kind]
        behavior = getattr(handler, attribute)
        return factory(
            _measured(behavior, (kind, service, method)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

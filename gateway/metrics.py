"""Every Prometheus metric the gateway exports, in one place (served at ``GET /metrics``), and
:func:`webhook_answered`, the one place a webhook's outcome, latency and reports are counted.
statusd calls are counted where they are made (:mod:`gateway.forwarder`). Those counted on
every webhook or call are :mod:`gateway.tally`'s lock-free ones (all counting happens on the
event loop's thread); they expose what prometheus_client's would."""

from __future__ import annotations

import time
from functools import lru_cache

from prometheus_client import Counter, Gauge, disable_created_metrics

from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub_common.status_names import status_label
from gateway.errors import WebhookError, authentication_failure
from gateway.providers import PROVIDERS, Parsed
from gateway.tally import CounterChild, LoopCounter, LoopHistogram

disable_created_metrics()  # type: ignore[no-untyped-call]  # no _created series

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DLR_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600)

REQUESTS = LoopCounter(
    "dlrhub_webhook_requests_total",
    "Webhook requests answered, by provider and outcome (ok, unauthorized, bad_request, ...).",
    ["provider", "outcome"],
)
REQUEST_LATENCY = LoopHistogram(
    "dlrhub_webhook_request_duration_seconds",
    "Time from a webhook request's arrival to its answer, by provider.",
    ["provider"],
    buckets=_LATENCY_BUCKETS,
)
REPORTS = LoopCounter(
    "dlrhub_webhook_reports_total",
    "Reports received in webhooks, by provider, canonical status and result "
    "(stored, duplicate, stale, quarantined).",
    ["provider", "status", "result"],
)
SIGNATURE_FAILURES = Counter(
    "dlrhub_signature_failures_total",
    "Webhook requests rejected as not genuine, by provider and reason.",
    ["provider", "reason"],
)
DLR_LATENCY = LoopHistogram(
    "dlrhub_dlr_latency_seconds",
    "Time from the provider's event time to the gateway receiving the report, by provider.",
    ["provider"],
    buckets=_DLR_BUCKETS,
)
FORWARD_LATENCY = LoopHistogram(
    "dlrhub_ingest_call_duration_seconds",
    "Time of the IngestReports call to statusd, commit included, by result code.",
    ["code"],
    buckets=_LATENCY_BUCKETS,
)
FIELDS_DROPPED = Counter(
    "dlrhub_report_fields_dropped_total",
    "Informational fields left out of stored reports because the provider's value was "
    "unreadable (kept in the raw item), by provider and field class.",
    ["provider", "field"],
)
STATUSD_UP = Gauge("dlrhub_statusd_up", "1 when statusd answered the last readiness check.")

_STORED = ingest_pb.INGEST_OUTCOME_STORED
_RESULT_LABELS: dict[int, str] = {
    ingest_pb.INGEST_OUTCOME_STORED: "stored",
    ingest_pb.INGEST_OUTCOME_DUPLICATE: "duplicate",
    ingest_pb.INGEST_OUTCOME_STALE: "stale",
}


def provider_label(name: str) -> str:
    """``name`` when it is a known provider, else ``unknown`` (bounded metric labels)."""
    return name if name in PROVIDERS else "unknown"


def webhook_answered(
    provider: str,
    seconds: float | None,
    error: WebhookError | None = None,
    accepted: tuple[Parsed, ingest_pb.IngestReportsResponse] | None = None,
) -> None:
    """Counts one answered webhook: its outcome (``ok`` or the error's kind), its latency
    (when it reached the handler), why it was not genuine, and what became of its reports
    (``accepted``: what it carried and statusd's answer)."""
    if error is None:
        REQUESTS.labels(provider, "ok").inc()
    else:
        REQUESTS.labels(provider, error.kind).inc()
        failure = authentication_failure(error)  # one answered 429 by the failure limit too
        if failure is not None:
            SIGNATURE_FAILURES.labels(provider, failure.label).inc()
    if seconds is not None:
        REQUEST_LATENCY.labels(provider).observe(seconds)
    if accepted is not None:
        _count_reports(provider, *accepted)


@lru_cache(maxsize=4096)
def report_counter(provider: str, status: int, outcome: int) -> CounterChild:
    """The ``dlrhub_webhook_reports_total`` child for a report of ``status`` that statusd
    answered with ``outcome`` (both enum numbers, mapped to their labels once)."""
    return REPORTS.labels(provider, status_label(status), _RESULT_LABELS.get(outcome, "other"))


def _count_reports(provider: str, parsed: Parsed, answer: ingest_pb.IngestReportsResponse) -> None:
    lags = None
    now = 0.0
    for report, outcome in zip(parsed.reports, answer.outcomes, strict=False):
        report_counter(provider, report.status, outcome).inc()
        if outcome == _STORED and report.HasField("event_time"):
            if lags is None:
                lags, now = DLR_LATENCY.labels(provider), time.time()
            lags.observe(max(now - report.event_time.seconds, 0.0))
    if parsed.quarantined:
        REPORTS.labels(provider, "unspecified", "quarantined").inc(len(parsed.quarantined))
    for field_class, _ in parsed.dropped:
        FIELDS_DROPPED.labels(provider, field_class).inc()

"""Every Prometheus metric the gateway exports, in one place (served at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DLR_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 72 * 3600)

REQUESTS = Counter(
    "dlrhub_webhook_requests_total",
    "Webhook requests answered, by provider and outcome (ok, unauthorized, bad_request, ...).",
    ["provider", "outcome"],
)
REQUEST_LATENCY = Histogram(
    "dlrhub_webhook_request_duration_seconds",
    "Time from a webhook request's arrival to its answer, by provider.",
    ["provider"],
    buckets=_LATENCY_BUCKETS,
)
REPORTS = Counter(
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
DLR_LATENCY = Histogram(
    "dlrhub_dlr_latency_seconds",
    "Time from the provider's event time to the gateway receiving the report, by provider.",
    ["provider"],
    buckets=_DLR_BUCKETS,
)
FORWARD_LATENCY = Histogram(
    "dlrhub_ingest_call_duration_seconds",
    "Time of the IngestReports call to statusd, commit included, by result code.",
    ["code"],
    buckets=_LATENCY_BUCKETS,
)
STATUSD_UP = Gauge("dlrhub_statusd_up", "1 when statusd answered the last readiness check.")

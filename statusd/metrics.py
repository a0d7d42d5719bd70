"""Every Prometheus metric statusd exports, in one place (served on its own metrics port)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub_common.status_names import status_label
from statusd import model

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

GRPC_HANDLED = Counter(
    "dlrhub_grpc_server_handled_total",
    "gRPC calls completed by statusd, by method and status code.",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "dlrhub_grpc_server_handling_seconds",
    "Time statusd took to answer a unary gRPC call, by method.",
    ["method"],
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


def outcome_label(outcome: int) -> str:
    """``INGEST_OUTCOME_STORED`` → ``stored``."""
    return ingest_pb.IngestOutcome.Name(outcome).removeprefix("INGEST_OUTCOME_").lower()  # type: ignore[arg-type]


def count_final_reports(reports: Sequence[pb.DeliveryReport], outcomes: Sequence[int]) -> None:
    """Counts the committed final reports that became their message's current status."""
    for report, outcome in zip(reports, outcomes, strict=True):
        if outcome == ingest_pb.INGEST_OUTCOME_STORED and model.final_time(report) is not None:
            country = model.country_of(report.recipient)
            FINAL_REPORTS.labels(report.provider, country, status_label(report.status)).inc()

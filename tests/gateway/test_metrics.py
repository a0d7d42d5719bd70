"""Counting a webhook once (gateway/metrics.py): its outcome, latency, signature failure and
what became of its reports, read back from the Prometheus registry the gateway serves."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from gateway import metrics
from gateway.errors import Malformed, Unauthenticated
from gateway.providers import Parsed

PROVIDER = "sinch"  # no other gateway test posts to it


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_unknown_providers_share_one_label() -> None:
    assert metrics.provider_label("infobip") == "infobip"
    assert metrics.provider_label("nosuch") == "unknown"


def test_an_accepted_webhook_counts_its_outcome_and_reports() -> None:
    before = sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="ok")
    stored = sample(
        "dlrhub_webhook_reports_total", provider=PROVIDER, status="delivered", result="stored"
    )
    quarantined = sample(
        "dlrhub_webhook_reports_total",
        provider=PROVIDER,
        status="unspecified",
        result="quarantined",
    )
    latencies = sample("dlrhub_webhook_request_duration_seconds_count", provider=PROVIDER)
    parsed = Parsed(
        reports=[pb.DeliveryReport(status=pb.DELIVERY_STATUS_DELIVERED)] * 2,
        quarantined=[pb.QuarantinedItem()],
    )
    answer = ingest_pb.IngestReportsResponse(
        outcomes=[ingest_pb.INGEST_OUTCOME_STORED, ingest_pb.INGEST_OUTCOME_STORED]
    )
    metrics.webhook_answered(PROVIDER, 0.01, accepted=(parsed, answer))
    assert sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="ok") == before + 1
    assert (
        sample(
            "dlrhub_webhook_reports_total", provider=PROVIDER, status="delivered", result="stored"
        )
        == stored + 2
    )
    assert (
        sample(
            "dlrhub_webhook_reports_total",
            provider=PROVIDER,
            status="unspecified",
            result="quarantined",
        )
        == quarantined + 1
    )
    assert (
        sample("dlrhub_webhook_request_duration_seconds_count", provider=PROVIDER) == latencies + 1
    )


def test_a_refused_webhook_counts_its_kind_and_why_it_was_not_genuine() -> None:
    forged = sample("dlrhub_signature_failures_total", provider=PROVIDER, reason="stale")
    refused = sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="unauthorized")
    malformed = sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="bad_request")
    latencies = sample("dlrhub_webhook_request_duration_seconds_count", provider=PROVIDER)
    metrics.webhook_answered(PROVIDER, 0.01, Unauthenticated("old", label="stale"))
    metrics.webhook_answered(PROVIDER, None, Malformed("bad"))  # refused before the handler
    assert sample("dlrhub_signature_failures_total", provider=PROVIDER, reason="stale") == (
        forged + 1
    )
    assert (
        sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="unauthorized")
        == refused + 1
    )
    assert (
        sample("dlrhub_webhook_requests_total", provider=PROVIDER, outcome="bad_request")
        == malformed + 1
    )
    assert (
        sample("dlrhub_webhook_request_duration_seconds_count", provider=PROVIDER) == latencies + 1
    )


def test_fields_left_out_of_accepted_reports_are_counted_by_field_class() -> None:
    labels = {"provider": PROVIDER}
    before = {
        field: sample("dlrhub_report_fields_dropped_total", **labels, field=field)
        for field in ("mcc_mnc", "event_time")
    }
    parsed = Parsed(
        reports=[pb.DeliveryReport(status=pb.DELIVERY_STATUS_DELIVERED)],
        dropped=[("mcc_mnc", "mccMnc is not 5 or 6 digits"), ("event_time", "at is bad")] * 2,
    )
    answer = ingest_pb.IngestReportsResponse(outcomes=[ingest_pb.INGEST_OUTCOME_STORED])
    metrics.webhook_answered(PROVIDER, 0.01, accepted=(parsed, answer))
    for field, count in before.items():
        after = sample("dlrhub_report_fields_dropped_total", **labels, field=field)
        assert after == count + 2
    # Refused webhooks store nothing and count no fields.
    metrics.webhook_answered(PROVIDER, 0.01, Malformed("bad"))
    assert sample("dlrhub_report_fields_dropped_total", **labels, field="mcc_mnc") == (
        before["mcc_mnc"] + 2
    )


def test_a_report_counter_is_looked_up_once_and_still_counts() -> None:
    first = metrics.report_counter(PROVIDER, pb.DELIVERY_STATUS_FAILED, 99)
    assert metrics.report_counter(PROVIDER, pb.DELIVERY_STATUS_FAILED, 99) is first
    labels = {"provider": PROVIDER, "status": "failed", "result": "other"}
    before = sample("dlrhub_webhook_reports_total", **labels)
    first.inc()
    assert sample("dlrhub_webhook_reports_total", **labels) == before + 1

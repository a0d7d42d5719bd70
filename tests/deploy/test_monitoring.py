"""ServiceMonitors, alerts and the Grafana dashboard: they refer only to series that exist."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy import app_contract as app
from tests.deploy.chart import CHART_DIR, Object, component, of_kind, one, render, values_cases

MONITORING_ON = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True, "runbookUrl": "https://runbooks.example.com/dlrhub"},
    "grafanaDashboard": {"enabled": True},
}
#: Alerts the rule must carry (the issue's list: what an operator needs to be woken for).
REQUIRED_ALERTS = frozenset(
    {
        "DlrhubSignatureFailureSpike",
        "DlrhubWebhooksUnavailable",
        "DlrhubIngestLatencyHigh",
        "DlrhubStoreCommitErrors",
        "DlrhubProviderSilent",
        "DlrhubQuarantineGrowing",
        "DlrhubStatusdDown",
    }
)
#: Series that are not the application's own.
PROMETHEUS_SERIES = frozenset({"up"})


@pytest.fixture(scope="module")
def objects() -> list[Object]:
    return render(MONITORING_ON)


def alert_rules(objects: list[Object]) -> list[dict[str, Any]]:
    (rule,) = of_kind(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard(objects: list[Object]) -> dict[str, Any]:
    (configmap,) = [
        c for c in of_kind(objects, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    (text,) = configmap["data"].values()
    board: dict[str, Any] = json.loads(text)
    return board


def dashboard_queries(board: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if isinstance(variable.get("query"), dict):
            queries.append(variable["query"]["query"])
    return queries


def test_service_monitors_scrape_named_ports_of_both_services(objects: list[Object]) -> None:
    for name in ("gateway", "statusd"):
        monitor = one(objects, "ServiceMonitor", name)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            svc
            for svc in of_kind(objects, "Service")
            if selector.items() <= svc["metadata"]["labels"].items()
        ]
        assert {component(svc) for svc in services} == {name}
        for endpoint in monitor["spec"]["endpoints"]:
            # Exactly one selected Service has the port (statusd's headless one has only
            # gRPC), so each pod is scraped once.
            exposing = [
                svc
                for svc in services
                if endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
            ]
            assert len(exposing) == 1, endpoint
            assert exposing[0]["spec"]["selector"] == selector
            assert endpoint["path"] == "/metrics"
    assert "/metrics" in app.gateway_routes()


def test_the_rule_has_the_required_actionable_alerts(objects: list[Object]) -> None:
    rules = alert_rules(objects)
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert len(annotations["description"]) > 120, f"{rule['alert']}: say what to check"
        assert annotations["runbook_url"].endswith("#" + rule["alert"].lower())


def test_alert_expressions_use_only_exposed_metrics(objects: list[Object]) -> None:
    exposed = app.metric_names()
    for rule in alert_rules(objects):
        used = app.referenced_metrics(rule["expr"])
        assert used or PROMETHEUS_SERIES & set(re.findall(r"\w+", rule["expr"])), rule["alert"]
        assert used <= exposed, f"{rule['alert']}: {sorted(used - exposed)} are not exposed"


def test_alert_expressions_select_this_release(objects: list[Object]) -> None:
    services = {svc["metadata"]["name"] for svc in of_kind(objects, "Service")}
    namespace = objects[0]["metadata"]["namespace"]
    for rule in alert_rules(objects):
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), rule["alert"]
        assert expr.count("{") == expr.count("}"), rule["alert"]
        jobs = set(re.findall(r'job="([^"]+)"', expr))
        assert jobs, f"{rule['alert']} is not scoped to the release"
        assert jobs <= services, rule["alert"]
        assert set(re.findall(r'namespace="([^"]+)"', expr)) == {namespace}, rule["alert"]


def test_alert_thresholds_come_from_values() -> None:
    objects = render(
        {
            "prometheusRule": {
                "enabled": True,
                "thresholds": {"providerSilentMinutes": 45, "ingestLatencyP99Seconds": 2.5},
            }
        }
    )
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules(objects)}
    assert "[45m]" in rules["DlrhubProviderSilent"]
    assert rules["DlrhubIngestLatencyHigh"].rstrip().endswith("> 2.5")


def test_dashboard_is_labelled_for_the_sidecar(objects: list[Object]) -> None:
    board = dashboard(objects)
    assert board["uid"] == "dlrhub"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    source = json.loads((CHART_DIR / "dashboards" / "dlrhub.json").read_text(encoding="utf-8"))
    assert board == source


def test_dashboard_queries_use_only_exposed_metrics(objects: list[Object]) -> None:
    exposed = app.metric_names()
    queries = dashboard_queries(dashboard(objects))
    assert queries
    for query in queries:
        used = app.referenced_metrics(query)
        assert used, f"no dlrhub metric in {query!r}"
        assert used <= exposed, f"{sorted(used - exposed)} are not exposed ({query!r})"


def test_dashboard_shows_every_metric_the_app_updates(objects: list[Object]) -> None:
    shown = {
        app.family(name)
        for query in dashboard_queries(dashboard(objects))
        for name in app.referenced_metrics(query)
    }
    assert app.metric_families_in_use() - shown == set()


def test_production_values_enable_monitoring() -> None:
    production = dict(values_cases())["production-values"]
    objects = render(production)
    assert len(of_kind(objects, "ServiceMonitor")) == 2
    assert alert_rules(objects)
    (board_map,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert board_map["metadata"]["namespace"] == production["grafanaDashboard"]["namespace"]

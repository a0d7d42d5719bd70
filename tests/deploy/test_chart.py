"""The Helm chart: renders, lints clean, validates against Kubernetes, matches the app."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from dlrhub_common.settings import load
from gateway.ratelimit import parse_networks
from gateway.settings import GatewaySettings
from tests.deploy.chart import (
    CHART_DIR,
    NAMESPACE,
    Object,
    component,
    container_env,
    of_kind,
    one,
    pod_spec,
    render,
    render_files,
    values_cases,
    workloads,
)
from tests.helpers.servers import environment

#: The Kubernetes version the rendered objects are validated against.
KUBERNETES_VERSION = "1.31.0"
#: Custom resources kubernetes-validate has no schema for (checked in test_monitoring.py).
CUSTOM_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
#: helm lint's severity of a warning (errors are 3).
LINT_WARNING = 2
#: The only labels a selector may use: they never change between chart versions.
SELECTOR_KEYS = frozenset(
    {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
)

CASES = dict(values_cases())


def test_ci_values_files_exist() -> None:
    assert {"production-values", "single-node-values"} <= set(CASES)


def test_lint_is_clean_in_strict_mode(case: tuple[str, dict[str, Any]]) -> None:
    report = helm_python.lint(CHART_DIR, case[1], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= LINT_WARNING]
    assert problems == []


def oldest_kubernetes() -> str:
    """The lowest version Chart.yaml's kubeVersion admits (">=1.27.0-0" → 1.27.0)."""
    text = (CHART_DIR / "Chart.yaml").read_text(encoding="utf-8")
    found = re.search(r'kubeVersion:\s*">=\s*(\d+\.\d+\.\d+)', text)
    assert found, "Chart.yaml has no kubeVersion lower bound"
    return found.group(1)


@pytest.mark.parametrize("version", [oldest_kubernetes(), KUBERNETES_VERSION])
def test_objects_validate_against_kubernetes(objects: list[Object], version: str) -> None:
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")


def test_every_object_is_namespaced_and_labelled(objects: list[Object]) -> None:
    for obj in objects:
        metadata = obj["metadata"]
        assert metadata.get("namespace"), f"{obj['kind']}/{metadata['name']} has no namespace"
        labels = metadata["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"]
        assert len(metadata["name"]) <= 63


def selectors(obj: Object) -> list[dict[str, str]]:
    """Every label selector an object uses to pick pods."""
    spec = obj.get("spec", {})
    found: list[dict[str, str]] = []
    if obj["kind"] == "Service":
        found.append(spec["selector"])
    if obj["kind"] in {"Deployment", "PodDisruptionBudget", "ServiceMonitor"}:
        found.append(spec["selector"]["matchLabels"])
    if obj["kind"] == "NetworkPolicy":
        found.append(spec["podSelector"]["matchLabels"])
    if obj["kind"] == "Deployment":
        for constraint in pod_spec(obj).get("topologySpreadConstraints", []):
            found.append(constraint["labelSelector"]["matchLabels"])
    return found


def test_selectors_use_only_stable_labels(objects: list[Object]) -> None:
    for obj in objects:
        for selector in selectors(obj):
            assert selector, f"{obj['kind']}/{obj['metadata']['name']} selects everything"
            assert set(selector) <= SELECTOR_KEYS, (
                f"{obj['kind']}/{obj['metadata']['name']} selects on {sorted(selector)}"
            )
            assert "helm.sh/chart" not in selector


def test_services_select_their_deployments_pods(objects: list[Object]) -> None:
    for name in ("gateway", "statusd"):
        deployment = one(objects, "Deployment", name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        services = [svc for svc in of_kind(objects, "Service") if component(svc) == name]
        assert services
        for service in services:
            assert service["spec"]["selector"] == selector
        for kind in ("PodDisruptionBudget", "NetworkPolicy"):
            for obj in of_kind(objects, kind):
                if component(obj) == name:
                    assert selectors(obj)[0] == selector


def test_optional_features_are_off_by_default() -> None:
    objects = render()
    kinds = {obj["kind"] for obj in objects}
    for kind in ("Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"):
        assert kind not in kinds
    for configmap in of_kind(objects, "ConfigMap"):
        assert "grafana_dashboard" not in configmap["metadata"]["labels"]


def test_production_values_turn_everything_on() -> None:
    objects = render(CASES["production-values"])
    kinds = {obj["kind"] for obj in objects}
    assert {"Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"} <= kinds
    hpa = one(objects, "HorizontalPodAutoscaler", "gateway")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == one(objects, "Deployment", "gateway")["metadata"]["name"]
    )
    assert "replicas" not in one(objects, "Deployment", "gateway")["spec"]
    assert one(objects, "Deployment", "statusd")["spec"]["replicas"] > 1
    assert not of_kind(objects, "Secret"), "existingSecret: the chart must create none"


def test_security_contexts_are_hardened(objects: list[Object]) -> None:
    for obj in workloads(objects):
        spec = pod_spec(obj)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"]["type"] == "RuntimeDefault", name
    for account in of_kind(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def mounts(deployment: Object) -> dict[str, Object]:
    """mountPath → the volume behind it."""
    spec = pod_spec(deployment)
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    (container,) = spec["containers"]
    return {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}


def test_writable_paths_are_volumes(objects: list[Object]) -> None:
    for name in ("gateway", "statusd"):
        deployment = one(objects, "Deployment", name)
        assert "emptyDir" in mounts(deployment)["/tmp"]
    statusd = one(objects, "Deployment", "statusd")
    sqlite_path = container_env(objects, statusd).get("DLRHUB_SQLITE_PATH")
    if sqlite_path is not None:
        data = mounts(statusd)[str(Path(sqlite_path).parent)]
        assert "persistentVolumeClaim" in data or "emptyDir" in data


def test_sqlite_runs_one_statusd_with_recreate_and_a_claim() -> None:
    objects = render({"storage": {"backend": "sqlite"}})
    statusd = one(objects, "Deployment", "statusd")
    assert statusd["spec"]["replicas"] == 1
    assert statusd["spec"]["strategy"] == {"type": "Recreate"}
    claim = one(objects, "PersistentVolumeClaim", "statusd")
    data = mounts(statusd)[str(Path(container_env(objects, statusd)["DLRHUB_SQLITE_PATH"]).parent)]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "DLRHUB_MONGODB_URI_FILE" not in container_env(objects, statusd)


def test_probes_move_to_the_plaintext_health_port_when_one_is_set() -> None:
    objects = render({"statusd": {"containerPorts": {"health": 50052}}})
    statusd = one(objects, "Deployment", "statusd")
    container = pod_spec(statusd)["containers"][0]
    assert {"name": "grpc-health", "containerPort": 50052, "protocol": "TCP"} in container["ports"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == 50052
    assert container_env(objects, statusd)["DLRHUB_STATUSD_HEALTH_PORT"] == "50052"
    default = pod_spec(one(render({}), "Deployment", "statusd"))["containers"][0]
    assert default["readinessProbe"]["grpc"]["port"] == 50051
    assert all(port["name"] != "grpc-health" for port in default["ports"])


def test_existing_claim_is_used_as_is() -> None:
    objects = render({"persistence": {"existingClaim": "sms-data"}})
    assert not of_kind(objects, "PersistentVolumeClaim")
    volumes = pod_spec(one(objects, "Deployment", "statusd"))["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "sms-data"}} in volumes


def test_mongodb_reads_the_uri_from_a_file_and_rolls() -> None:
    objects = render(
        {
            "storage": {"backend": "mongodb"},
            "secrets": {"statusd": {"MONGODB_URI": "mongodb://db/dlrhub"}},
            "statusd": {"replicaCount": 2},
        }
    )
    statusd = one(objects, "Deployment", "statusd")
    env = container_env(objects, statusd)
    assert statusd["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "DLRHUB_SQLITE_PATH" not in env
    assert not of_kind(objects, "PersistentVolumeClaim")
    secret_file = Path(env["DLRHUB_MONGODB_URI_FILE"])
    assert mounts(statusd)[str(secret_file.parent)]["secret"]["items"] == [
        {"key": "MONGODB_URI", "path": secret_file.name}
    ]


def test_secrets_are_files_and_each_component_gets_only_its_own() -> None:
    values = {
        "secrets": {
            "gateway": {"INFOBIP_BASIC_AUTH": "user:pw", "PLIVO_AUTH_TOKEN": ""},
            "statusd": {"TLS_CLIENT_CA": "-----BEGIN CERTIFICATE-----"},
        }
    }
    objects = render(values)
    (secret,) = [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == "dlrhub"]
    assert sorted(secret["data"]) == ["INFOBIP_BASIC_AUTH", "TLS_CLIENT_CA"]
    gateway_env = container_env(objects, one(objects, "Deployment", "gateway"))
    statusd_env = container_env(objects, one(objects, "Deployment", "statusd"))
    assert "DLRHUB_INFOBIP_BASIC_AUTH_FILE" in gateway_env
    assert "DLRHUB_PLIVO_AUTH_TOKEN_FILE" not in gateway_env, "empty values are left out"
    assert "DLRHUB_TLS_CLIENT_CA_FILE" in statusd_env
    assert "DLRHUB_TLS_CLIENT_CA_FILE" not in gateway_env
    for env in (gateway_env, statusd_env):
        assert not any(name.endswith(("_AUTH", "_TOKENS", "_URI")) for name in env)


def checksums(objects: list[Object], name: str) -> dict[str, str]:
    annotations = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
    return {key: str(annotations[key]) for key in ("checksum/config", "checksum/secret")}


def test_checksums_change_with_configuration() -> None:
    base = render({"secrets": {"gateway": {"PLIVO_AUTH_TOKEN": "one"}}})
    config = render(
        {"secrets": {"gateway": {"PLIVO_AUTH_TOKEN": "one"}}, "gateway": {"config": {"A": "1"}}}
    )
    secret = render({"secrets": {"gateway": {"PLIVO_AUTH_TOKEN": "two"}}})
    assert (
        checksums(config, "gateway")["checksum/config"]
        != checksums(base, "gateway")["checksum/config"]
    )
    assert checksums(config, "statusd") == checksums(base, "statusd")
    assert (
        checksums(secret, "gateway")["checksum/secret"]
        != checksums(base, "gateway")["checksum/secret"]
    )
    assert (
        checksums(secret, "gateway")["checksum/config"]
        == checksums(base, "gateway")["checksum/config"]
    )


def test_default_probes_are_all_on() -> None:
    objects = render()
    for name in ("gateway", "statusd"):
        container = pod_spec(one(objects, "Deployment", name))["containers"][0]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)


def test_both_components_request_cpu_and_memory_with_a_memory_limit() -> None:
    objects = render()
    for name in ("gateway", "statusd"):
        resources = pod_spec(one(objects, "Deployment", name))["containers"][0]["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}, name
        assert set(resources["limits"]) == {"memory"}, name  # no CPU limit: no throttling


def test_statusd_grpc_is_reachable_only_from_gateway_and_clients(objects: list[Object]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    if not policies:
        return
    statusd_policy = one(objects, "NetworkPolicy", "statusd")
    gateway_selector = one(objects, "Deployment", "gateway")["spec"]["selector"]["matchLabels"]
    rules = {rule["ports"][0]["port"]: rule for rule in statusd_policy["spec"]["ingress"]}
    assert set(rules) == {"grpc", "http-metrics"}
    peers = rules["grpc"]["from"]
    assert {"podSelector": {"matchLabels": gateway_selector}} in peers
    client_labels = [peer["podSelector"]["matchLabels"] for peer in peers]
    assert {"dlrhub.io/client": "true"} in client_labels
    for peer in rules["http-metrics"]["from"]:
        assert peer["podSelector"], "metrics must not be open to every pod"


def test_notes_warn_about_sqlite_and_show_grpcurl() -> None:
    notes = render_files()[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "grpcurl" in notes
    assert "one statusd pod" in notes
    production = render_files(CASES["production-values"])
    notes = production[f"{CHART_DIR.name}/templates/NOTES.txt"]
    assert "https://dlr.example.com/webhooks/<provider>" in notes
    assert "sqlite" not in notes.lower()


def test_trusted_proxies_reach_the_gateway_and_notes_warn_without_them() -> None:
    notes_path = f"{CHART_DIR.name}/templates/NOTES.txt"
    warning = "gateway.trustedProxies is empty"
    ingress = {
        "enabled": True,
        "hosts": [
            {"host": "dlr.example.com", "paths": [{"path": "/webhooks", "pathType": "Prefix"}]}
        ],
    }
    assert warning not in render_files()[notes_path]  # no ingress, no warning
    assert warning in render_files({"ingress": ingress})[notes_path]
    config = one(render({"ingress": ingress}), "ConfigMap", "gateway")["data"]
    assert "DLRHUB_TRUSTED_PROXIES" not in config
    values = {"ingress": ingress, "gateway": {"trustedProxies": ["10.0.0.0/8", "fd00::/8"]}}
    assert warning not in render_files(values)[notes_path]
    config = one(render(values), "ConfigMap", "gateway")["data"]
    assert config["DLRHUB_TRUSTED_PROXIES"] == "10.0.0.0/8,fd00::/8"
    with environment({"DLRHUB_TRUSTED_PROXIES": config["DLRHUB_TRUSTED_PROXIES"]}):
        settings = load(GatewaySettings)
    assert parse_networks(settings.trusted_proxies) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_gateway_policy_admits_scrapers_when_sources_are_narrowed() -> None:
    production = CASES["production-values"]
    policy = one(render(production), "NetworkPolicy", "gateway")
    (rule,) = policy["spec"]["ingress"]
    metrics = production["networkPolicy"]["metrics"]
    assert {
        "namespaceSelector": metrics["namespaceSelector"],
        "podSelector": metrics["podSelector"],
    } in rule["from"]
    assert "from" not in one(render(), "NetworkPolicy", "gateway")["spec"]["ingress"][0]


def test_long_release_names_fit_dns_labels() -> None:
    release = "r" * 53  # Helm's longest release name
    for obj in render(CASES["production-values"], release=release):
        if obj["kind"] != "Pod":
            assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
    names = {o["metadata"]["name"] for o in render(release=release) if o["kind"] == "Deployment"}
    assert len(names) == 2, "component names must stay distinct after truncation"


@pytest.mark.parametrize("case", ["default", "production-values"])
@pytest.mark.parametrize("release", ["dlrhub", "r" * 53])
def test_gateway_balances_over_every_statusd_pod(case: str, release: str) -> None:
    objects = render(CASES[case], release=release)
    (headless,) = [svc for svc in of_kind(objects, "Service") if svc["spec"].get("clusterIP")]
    assert component(headless) == "statusd"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False  # ready pods only
    (port,) = headless["spec"]["ports"]  # gRPC only: metrics are scraped through the other
    statusd = pod_spec(one(objects, "Deployment", "statusd"))["containers"][0]
    grpc_port = next(p["containerPort"] for p in statusd["ports"] if p["name"] == "grpc")
    assert (port["name"], port["port"], port["targetPort"]) == ("grpc", grpc_port, "grpc")
    names = [svc["metadata"]["name"] for svc in of_kind(objects, "Service")]
    assert len(set(names)) == len(names)
    env = container_env(objects, one(objects, "Deployment", "gateway"))
    # The pods' own port: DNS of a headless Service answers pod addresses, with no port mapping.
    host = f"{headless['metadata']['name']}.{NAMESPACE}.svc"
    assert env["DLRHUB_STATUSD_TARGET"] == f"dns:///{host}:{grpc_port}"
    assert "DLRHUB_STATUSD_HOST" not in env

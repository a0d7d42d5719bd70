"""The chart against the application: settings it sets, ports, probes, health services."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from dlrhub_common import tracing
from dlrhub_common.config_names import check_environment
from dlrhub_common.settings import load
from gateway.settings import GatewayConfig, GatewaySettings
from statusd.settings import StatusdSettings
from tests.deploy import app_contract as app
from tests.deploy.chart import (
    Object,
    component,
    container_env,
    of_kind,
    one,
    pod_spec,
    render,
)

#: The bind address every listener needs inside a pod.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def test_environment_names_exist_in_the_settings(objects: list[Object]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        known = app.component_variables(component(deployment))
        for name in container_env(objects, deployment):
            if name.startswith("DLRHUB_"):
                assert name in known, f"{component(deployment)} reads no {name}"


def test_ports_and_addresses_match_the_settings(objects: list[Object]) -> None:
    gateway = one(objects, "Deployment", "gateway")
    statusd = one(objects, "Deployment", "statusd")
    gateway_ports = {
        p["name"]: p["containerPort"] for p in pod_spec(gateway)["containers"][0]["ports"]
    }
    statusd_ports = {
        p["name"]: p["containerPort"] for p in pod_spec(statusd)["containers"][0]["ports"]
    }
    gateway_env = container_env(objects, gateway)
    statusd_env = container_env(objects, statusd)
    assert int(gateway_env["DLRHUB_GATEWAY_PORT"]) == gateway_ports["http"]
    assert gateway_env["DLRHUB_GATEWAY_HOST"] == ALL_INTERFACES
    assert int(statusd_env["DLRHUB_STATUSD_PORT"]) == statusd_ports["grpc"]
    assert int(statusd_env["DLRHUB_STATUSD_METRICS_PORT"]) == statusd_ports["http-metrics"]
    assert statusd_env["DLRHUB_STATUSD_HOST"] == ALL_INTERFACES
    assert statusd_env["DLRHUB_STATUSD_METRICS_HOST"] == ALL_INTERFACES
    settings = load(GatewaySettings, statusd_target=gateway_env["DLRHUB_STATUSD_TARGET"])
    assert settings.grpc_target == gateway_env["DLRHUB_STATUSD_TARGET"]
    assert settings.grpc_target.endswith(f".svc:{statusd_ports['grpc']}")
    for svc in of_kind(objects, "Service"):
        pod_ports = gateway_ports if component(svc) == "gateway" else statusd_ports
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in pod_ports


def test_default_ports_are_the_applications_defaults() -> None:
    objects = render()
    gateway = pod_spec(one(objects, "Deployment", "gateway"))["containers"][0]
    statusd = pod_spec(one(objects, "Deployment", "statusd"))["containers"][0]
    assert gateway["ports"][0]["containerPort"] == app.default(GatewaySettings, "gateway_port")
    ports = {p["name"]: p["containerPort"] for p in statusd["ports"]}
    assert ports["grpc"] == app.default(StatusdSettings, "statusd_port")
    assert ports["http-metrics"] == app.default(StatusdSettings, "statusd_metrics_port")


def test_probes_match_the_routes_and_health_services(objects: list[Object]) -> None:
    routes = app.gateway_routes()
    services = app.health_services()
    gateway = pod_spec(one(objects, "Deployment", "gateway"))["containers"][0]
    port_names = {port["name"] for port in gateway["ports"]}
    probes = {
        kind: gateway.get(kind) for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    for kind, probe in probes.items():
        if probe is None:
            continue
        assert probe["httpGet"]["path"] in routes, f"gateway {kind}"
        assert probe["httpGet"]["port"] in port_names, f"gateway {kind}"
    if probes["livenessProbe"]:
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    if probes["readinessProbe"]:
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    statusd = pod_spec(one(objects, "Deployment", "statusd"))["containers"][0]
    grpc_port = next(p["containerPort"] for p in statusd["ports"] if p["name"] == "grpc")
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = statusd.get(kind)
        if probe is None:
            continue
        assert probe["grpc"]["port"] == grpc_port, f"statusd {kind}"
        assert probe["grpc"].get("service", "") in services, f"statusd {kind}"


def test_helm_test_pods_check_the_services(objects: list[Object]) -> None:
    pods = of_kind(objects, "Pod")
    if not pods:
        return
    services = {svc["metadata"]["name"]: svc for svc in of_kind(objects, "Service")}
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["restartPolicy"] == "Never"
        target = pod["spec"]["containers"][0]["command"][3]
        host, port = re.sub(r"^http://|/readyz$", "", target).split(":")
        service = services[host.split(".")[0]]
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    statusd_test = next(p for p in pods if "test-health" in p["metadata"]["name"])
    assert statusd_test["metadata"]["labels"]["dlrhub.io/client"] == "true"
    assert set(statusd_test["spec"]["containers"][0]["command"][4:]) == app.health_services()


def secret_text(objects: list[Object], key: str) -> str:
    """The chart's own Secret value for ``key``; a stand-in when an existingSecret holds it."""
    for secret in of_kind(objects, "Secret"):
        if key in secret.get("data", {}):
            return base64.b64decode(secret["data"][key]).decode()
    if key.endswith("_ACCOUNTS"):
        return "{}"
    if key.endswith("_BASIC_AUTH"):  # user:password pairs
        return f"stand-in:for-{key.lower()}"
    return f"stand-in-for-{key.lower()}"


def use_environment(
    objects: list[Object], name: str, secret_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Puts a component's rendered environment in place, its secret files in ``secret_dir``."""
    env = container_env(objects, one(objects, "Deployment", name))
    for variable in os.environ:
        if variable.startswith("DLRHUB_"):
            monkeypatch.delenv(variable)
    secret_dir.mkdir()
    for variable, value in env.items():
        if variable.endswith(app.FILE_SUFFIX):
            path = secret_dir / Path(value).name
            path.write_text(secret_text(objects, path.name) + "\n", encoding="utf-8")
            monkeypatch.setenv(variable, str(path))
        else:
            monkeypatch.setenv(variable, value)
    return env


def test_rendered_environment_loads_into_the_settings(
    objects: list[Object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = use_environment(objects, "statusd", tmp_path / "statusd", monkeypatch)
    statusd = load(StatusdSettings)
    assert statusd.statusd_port == int(env["DLRHUB_STATUSD_PORT"])
    assert (statusd.mongodb_uri is None) == ("DLRHUB_MONGODB_URI_FILE" not in env)

    env = use_environment(objects, "gateway", tmp_path / "gateway", monkeypatch)
    config = GatewayConfig.load(load(GatewaySettings))
    assert config.settings.gateway_port == int(env["DLRHUB_GATEWAY_PORT"])
    enabled = {provider for provider, _ in config.endpoints}
    for provider, prefix in app.provider_prefixes().items():
        if any(v.startswith(prefix) and v.endswith(app.FILE_SUFFIX) for v in env):
            assert provider in enabled, f"{provider} has secrets but is not enabled"


OTEL_VALUES = {
    "endpoint": "http://otel-collector.observability:4317",
    "sampler": "parentbased_traceidratio",
    "samplerArg": "0.25",
    "resourceAttributes": "deployment.environment=prod",
}


def test_otel_values_turn_traces_on_in_both_components() -> None:
    objects = render({"otel": OTEL_VALUES})
    for name in ("gateway", "statusd"):
        env = container_env(objects, one(objects, "Deployment", name))
        assert {key: value for key, value in env.items() if key.startswith("OTEL_")} == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTEL_VALUES["endpoint"],
            "OTEL_TRACES_SAMPLER": OTEL_VALUES["sampler"],
            "OTEL_TRACES_SAMPLER_ARG": OTEL_VALUES["samplerArg"],
            "OTEL_RESOURCE_ATTRIBUTES": OTEL_VALUES["resourceAttributes"],
        }
        assert tracing.configured(env)
        check_environment(app.component_variables(name), env)  # OTEL_* are not DLRHUB_*


def test_traces_are_off_by_default() -> None:
    objects = render()
    for deployment in of_kind(objects, "Deployment"):
        env = container_env(objects, deployment)
        assert not tracing.configured(env), component(deployment)

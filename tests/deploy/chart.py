"""Renders the Helm chart with Helm's own Go SDK (no helm binary, no cluster) for the tests."""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "deploy" / "helm" / "dlrhub"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
RELEASE = "dlrhub"
NAMESPACE = "sms"

Object = dict[str, Any]


@functools.cache
def chart() -> helm_python.Chart:
    """The chart, loaded once."""
    return helm_python.Chart.load(CHART_DIR)


def ci_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(values, dict), f"{path.name} is not a mapping"
    return values


def values_cases() -> list[tuple[str, dict[str, Any]]]:
    """The defaults and every ci/*-values.yaml, as (name, values) pairs."""
    return [("default", {}), *((path.stem, ci_values(path)) for path in CI_VALUES)]


def render_files(
    values: Mapping[str, Any] | None = None, *, release: str = RELEASE
) -> dict[str, str]:
    """Template path → rendered text (NOTES.txt included)."""
    return chart().render(dict(values or {}), name=release, namespace=NAMESPACE)


def render(values: Mapping[str, Any] | None = None, *, release: str = RELEASE) -> list[Object]:
    """Every object the chart renders for ``values``, in template order."""
    objects: list[Object] = []
    for path, text in render_files(values, release=release).items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                assert isinstance(document, dict), f"{path}: not an object"
                objects.append(document)
    return objects


def of_kind(objects: list[Object], kind: str) -> list[Object]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(obj: Object) -> str:
    """The app.kubernetes.io/component label ("" for shared objects)."""
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def one(objects: list[Object], kind: str, component_name: str) -> Object:
    """The single object of ``kind`` belonging to ``component_name``."""
    found = [obj for obj in of_kind(objects, kind) if component(obj) == component_name]
    assert len(found) == 1, f"expected one {kind} for {component_name}, got {len(found)}"
    return found[0]


def pod_spec(obj: Object) -> Object:
    """The pod spec of a Deployment or a Pod."""
    spec: Object = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    return spec


def workloads(objects: list[Object]) -> Iterator[Object]:
    """Deployments and (helm-test) Pods."""
    return (obj for obj in objects if obj["kind"] in {"Deployment", "Pod"})


def container_env(objects: list[Object], deployment: Object) -> dict[str, str]:
    """A Deployment's container environment: ConfigMap envFrom, then env (values or "")."""
    (container,) = pod_spec(deployment)["containers"]
    env: dict[str, str] = {}
    configmaps = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "ConfigMap")}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        env[variable["name"]] = str(variable.get("value", ""))
    return env


def merged_values(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chart's defaults coalesced with ``values``, as an install would see them."""
    return chart().merge_values(dict(values or {}))


def secret_value(objects: list[Object], name: str, key: str) -> str | None:
    """A key of a Secret the chart rendered, decoded; None when the chart renders no such key."""
    for secret in of_kind(objects, "Secret"):
        if secret["metadata"]["name"] == name and key in secret.get("data", {}):
            return base64.b64decode(secret["data"][key]).decode()
    return None


def mounted_files(
    objects: list[Object],
    deployment: Object,
    directory: Path,
    stand_ins: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Deployment's environment with every ``DLRHUB_*_FILE`` moved to ``directory``,
    the file holding what the pod would see there: the key of the Secret volume mounted at
    that path (``stand_ins[key]`` for a Secret the chart does not render)."""
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    env = container_env(objects, deployment)
    for variable, value in env.items():
        if not variable.endswith("_FILE"):
            continue
        path = Path(value)
        volume = volumes[mounts[str(path.parent)]]["secret"]
        (key,) = [item["key"] for item in volume["items"] if item["path"] == path.name]
        text = secret_value(objects, volume["secretName"], key)
        if text is None:
            text = (stand_ins or {})[key]
        copy = directory / volume["secretName"] / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text + "\n", encoding="utf-8")
        env[variable] = str(copy)
    return env

"""values.schema.json: good values pass, bad ones are refused by Helm and by jsonschema."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from tests.deploy.chart import CHART_DIR, NAMESPACE, ROOT, chart, merged_values, render

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)

#: Values the schema must refuse, each with a word its message must contain.
BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "sqlite with two statusd replicas": ({"statusd": {"replicaCount": 2}}, "replicaCount"),
    "sqlite with statusd autoscaling": (
        {"statusd": {"autoscaling": {"enabled": True}}},
        "enabled",
    ),
    "unknown top-level key": ({"replicas": 3}, "replicas"),
    "a CPU amount that is no quantity": (
        {"gateway": {"resources": {"requests": {"cpu": "lots"}}}},
        "lots",
    ),
    "a misspelt resources key": ({"statusd": {"resources": {"request": {}}}}, "request"),
    "unknown component key": ({"gateway": {"replicas": 3}}, "replicas"),
    "unknown storage backend": ({"storage": {"backend": "postgres"}}, "backend"),
    "unknown log level": ({"log": {"level": "verbose"}}, "level"),
    "OTLP endpoint without a scheme": ({"otel": {"endpoint": "collector:4317"}}, "collector"),
    "unknown trace sampler": ({"otel": {"sampler": "sometimes"}}, "sampler"),
    "mongodb without its URI": ({"storage": {"backend": "mongodb"}}, "MONGODB_URI"),
    "setting name not upper case": ({"gateway": {"config": {"max_body_bytes": "1"}}}, "max"),
    "secret that is not a string": (
        {"secrets": {"gateway": {"PLIVO_AUTH_TOKEN": 5}}},
        "PLIVO_AUTH_TOKEN",
    ),
    "ingress path without a slash": (
        {"ingress": {"hosts": [{"host": "a", "paths": [{"path": "x", "pathType": "Prefix"}]}]}},
        "path",
    ),
    "a setting the chart owns": ({"gateway": {"config": {"GATEWAY_PORT": "1"}}}, "GATEWAY_PORT"),
    "a secret in plain config": ({"statusd": {"config": {"MONGODB_URI": "x"}}}, "MONGODB_URI"),
    "a trusted proxy that is not an address": (
        {"gateway": {"trustedProxies": ["10.0.0.0/8", "ingress"]}},
        "trustedProxies",
    ),
    "trusted proxies as one string": ({"gateway": {"trustedProxies": "10.0.0.0/8"}}, "trusted"),
    "trusted proxies in plain config": (
        {"gateway": {"config": {"TRUSTED_PROXIES": "10.0.0.0/8"}}},
        "TRUSTED_PROXIES",
    ),
    "port out of range": ({"gateway": {"containerPorts": {"http": 70000}}}, "http"),
    "statusd's tokens among the secrets": (
        {"secrets": {"statusd": {"READ_TOKENS": "r"}}},
        "READ_TOKENS",
    ),
    "unknown statusd.auth key": ({"statusd": {"auth": {"readToken": "r"}}}, "readToken"),
}


def test_schema_is_draft_07_and_valid() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert chart().schema == SCHEMA


def chart_owned_objects(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of schema objects that declare properties but leave additionalProperties open."""
    found = []
    owned = schema.get("type") == "object" and "properties" in schema
    if owned and schema.get("additionalProperties") is not False:
        found.append(path or "<root>")
    for key, sub in schema.get("properties", {}).items():
        found += chart_owned_objects(sub, f"{path}.{key}")
    for name, sub in schema.get("definitions", {}).items():
        found += chart_owned_objects(sub, f"#{name}")
    return found


def test_chart_owned_objects_refuse_unknown_keys() -> None:
    assert chart_owned_objects(SCHEMA) == []


def test_defaults_and_ci_values_are_valid(case: tuple[str, dict[str, Any]]) -> None:
    VALIDATOR.validate(merged_values(case[1]))
    chart().validate_schema(merged_values(case[1]))


@pytest.mark.parametrize(("values", "word"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_jsonschema_refuses(values: dict[str, Any], word: str) -> None:
    errors = list(VALIDATOR.iter_errors(merged_values(values)))
    assert errors, "accepted"
    assert any(word in str(error) for error in errors)


@pytest.mark.parametrize(("values", "word"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_helm_render_refuses(values: dict[str, Any], word: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(word)):
        render(values)


def test_helm_lint_reports_schema_errors() -> None:
    values, _ = BAD_VALUES["sqlite with two statusd replicas"]
    report = helm_python.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    assert any("replicaCount" in error for error in report["errors"])


def test_template_guard_backs_up_the_schema(tmp_path: Path) -> None:
    copy = Path(chart().save_dir(tmp_path))
    (copy / "values.schema.json").unlink()
    values, _ = BAD_VALUES["sqlite with two statusd replicas"]
    with helm_python.Chart.load(copy) as unchecked:
        assert unchecked.schema is None
        with pytest.raises(helm_python.HelmRenderError, match="runs one statusd replica"):
            unchecked.render(values, name="dlrhub", namespace=NAMESPACE)


def test_mongodb_admits_several_statusd_replicas() -> None:
    values = {
        "storage": {"backend": "mongodb"},
        "secrets": {"statusd": {"MONGODB_URI": "mongodb://db"}},
        "statusd": {"replicaCount": 3, "autoscaling": {"enabled": True}},
    }
    VALIDATOR.validate(merged_values(values))
    kinds = {obj["kind"] for obj in render(values)}
    assert "HorizontalPodAutoscaler" in kinds


def test_chart_metadata() -> None:
    metadata = chart().metadata
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"] == project["version"]
    assert metadata["kubeVersion"] == ">=1.27.0-0"


#: values.yaml keys whose value is a Kubernetes object passed through as a whole.
PASS_THROUGH = frozenset(
    {
        "podSecurityContext",
        "securityContext",
        "podSelector",
        "namespaceSelector",
        "hosts",
        "resources",
    }
)
IDENTIFIER = re.compile(r"^[a-z][A-Za-z0-9]*$")


def leaf_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of values.yaml's chart-owned settings (pass-through objects are leaves)."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if (
            isinstance(value, dict)
            and value
            and key not in PASS_THROUGH
            and all(IDENTIFIER.match(k) for k in value)
        ):
            paths += leaf_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_readme_documents_every_value() -> None:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    readme = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = [path for path in leaf_paths(defaults) if path not in documented]
    assert missing == []


def test_values_yaml_comments_every_key() -> None:
    lines = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        stack = [(i, k) for i, k in stack if i < indent]
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if any(k in PASS_THROUGH for _, k in stack[:-1]):
            continue
        first = number
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        comment = lines[first].strip() if first < number else ""
        assert comment.startswith(f"# {path}"), f"values.yaml:{number + 1}: {path} undocumented"

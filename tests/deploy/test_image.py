"""The image the chart deploys: ``image.repository:appVersion`` unless told otherwise, and
``make image``, which builds exactly that tag with a container engine, or says plainly that
none was found (no engine runs here: the build itself is never run by the tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.chart import CHART_DIR, ROOT, chart, one, pod_spec, render

DEFAULT_REPOSITORY = "dlrhub/dlrhub"


def app_version() -> str:
    return str(chart().metadata["appVersion"])


def images(values: dict[str, object] | None = None) -> dict[str, str]:
    objects = render(values)
    return {
        name: pod_spec(one(objects, "Deployment", name))["containers"][0]["image"]
        for name in ("gateway", "statusd")
    }


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [str(shutil.which("make")), "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_default_image_is_the_repository_at_the_app_version() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    assert values["image"]["repository"] == DEFAULT_REPOSITORY
    assert values["image"]["tag"] == ""
    expected = f"{DEFAULT_REPOSITORY}:{app_version()}"
    assert images() == {"gateway": expected, "statusd": expected}


def test_a_tag_or_digest_overrides_the_app_version() -> None:
    assert images({"image": {"tag": "1.2.3"}})["statusd"] == f"{DEFAULT_REPOSITORY}:1.2.3"
    digest = "sha256:" + "a" * 64
    pinned = images({"image": {"repository": "r.example.com/dlrhub", "digest": digest}})
    assert pinned["gateway"] == f"r.example.com/dlrhub@{digest}"


def test_make_image_builds_the_tag_the_chart_deploys() -> None:
    dry = make("-n", "image", "CONTAINER_ENGINE=podman")
    assert dry.returncode == 0, dry.stderr
    build = dry.stdout.strip().splitlines()[-1]
    assert build.startswith("podman build -f deploy/Dockerfile ")
    assert f" -t {DEFAULT_REPOSITORY}:{app_version()} " in build
    assert f"--build-arg VERSION={app_version()} " in build
    pushed = make("-n", "image", "CONTAINER_ENGINE=docker", "IMAGE=r.example.com/sms/dlrhub")
    assert f" -t r.example.com/sms/dlrhub:{app_version()} " in pushed.stdout


def test_make_image_without_an_engine_says_so_and_fails(tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # sed and git only: no docker, podman or nerdctl
    tools.mkdir()
    for tool in ("sed", "git"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)
    result = make("image", path=str(tools))
    assert result.returncode != 0
    assert "no container engine found (looked for docker, podman and nerdctl" in result.stderr
    assert "build" not in result.stdout  # nothing was run

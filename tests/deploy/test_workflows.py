"""The CI workflows in .github/workflows: valid for GitHub Actions (actionlint, with
shellcheck on every ``run:`` script), and the MongoDB workflow does what the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def test_actionlint_finds_nothing_in_any_workflow() -> None:
    assert WORKFLOWS, "no workflow found"
    result = subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck", str(BIN / "shellcheck"), *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_and_shellcheck_do_fail_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: an unquoted variable in a script and an unknown key are found."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n"
        "  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo $HOME/$X\n"
    )
    result = subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck", str(BIN / "shellcheck"), str(broken)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "stepz" in result.stdout
    assert "SC2086" in result.stdout


def test_the_mongodb_workflow_runs_the_store_tests_on_a_replica_set() -> None:
    workflow: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/mongodb.yml").read_text())
    job = workflow["jobs"]["mongodb"]
    uri = job["env"]["DLRHUB_TEST_MONGODB_URI"]
    assert uri == "mongodb://localhost:27017/?replicaSet=rs0&directConnection=true"
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    assert "docker run -d --name mongo -p 27017:27017 mongo:8 --replSet rs0" in scripts
    assert "rs.initiate(" in scripts
    assert "isWritablePrimary" in scripts  # waits for the primary
    assert "make venv" in scripts
    assert "tests/statusd/storage" in scripts
    assert "tests/e2e/test_mongo_e2e.py" in scripts

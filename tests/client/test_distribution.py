"""The client as a consuming service meets it: the built ``dlrhub-client`` wheel holds
``dlrhub.client`` and the ``dlrhub.v1`` stubs (typed, no ``dlrhub/__init__.py``: a namespace
package), requires only grpcio and protobuf, installs into a clean venv without any of the
server, and a consumer program passes ``mypy --strict`` against it there. Also: the server's
wheel installs only dlrhub-specific top-level names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow  # builds two wheels and a venv (~15 s with a warm pip cache)

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = ROOT / "tests" / "data" / "client" / "consumer.py"
CLIENT_PROJECT = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
#: What a fresh venv brings by itself (setuptools only before Python 3.12).
VENV_TOOLS = {"pip", "setuptools"}
#: Parts of the server a client install must not bring.
SERVER_MODULES = ("gateway", "statusd", "dlrhub_common", "dlrhub_cli", "sanic", "pymongo")


def clean_env() -> dict[str, str]:
    """The environment without anything that would point Python or mypy at this checkout."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "MYPYPATH", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in dropped}


def run(*argv: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


def build_wheel(project: Path, into: Path) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", project, "-w", into, cwd=into)
    (wheel,) = into.glob("*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT / "client", tmp_path_factory.mktemp("client-wheel"))


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory, client_wheel: Path) -> Path:
    """The python of a clean venv with only the client wheel (and its dependencies) installed."""
    home = tmp_path_factory.mktemp("consumer")
    run(sys.executable, "-m", "venv", home / "venv", cwd=home)
    python = home / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", client_wheel, cwd=home)
    return python


def test_the_wheel_holds_the_typed_client_and_stubs(client_wheel: Path) -> None:
    with zipfile.ZipFile(client_wheel) as archive:
        names = set(archive.namelist())
    sources = ROOT / "client" / "src" / "dlrhub" / "client"
    stubs = ROOT / "gen" / "python" / "dlrhub" / "v1"
    assert {f"dlrhub/client/{path.name}" for path in sources.glob("*.py")} <= names
    assert {f"dlrhub/v1/{path.name}" for path in stubs.glob("*_pb2*.py*")} <= names
    assert {"dlrhub/client/py.typed", "dlrhub/v1/py.typed"} <= names
    assert "dlrhub/v1/status_service_pb2_grpc.pyi" in names
    assert "dlrhub/__init__.py" not in names  # dlrhub is a namespace package
    packages = {name.split("/")[0] for name in names if not name.startswith("dlrhub_client-")}
    assert packages == {"dlrhub"}


def test_the_wheel_requires_only_grpcio_and_protobuf(client_wheel: Path) -> None:
    metadata = wheel_metadata(client_wheel)
    assert metadata["Name"] == "dlrhub-client"
    assert metadata["Version"] == CLIENT_PROJECT["version"]
    required = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    assert sorted(req.name for req in required) == ["grpcio", "protobuf"]
    assert sorted(map(str, required)) == sorted(
        str(Requirement(line)) for line in CLIENT_PROJECT["dependencies"]
    )


def requirement_closure(installed: dict[str, list[str]], root: str) -> set[str]:
    """``root`` and every package its Requires-Dist reach (markers evaluated, no extras)."""
    found, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for line in installed[name]:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return found


def test_a_clean_venv_gets_the_client_and_its_two_dependencies_only(consumer: Path) -> None:
    report = json.loads(run(consumer, "-m", "pip", "inspect", cwd=consumer.parent).stdout)
    installed: dict[str, list[str]] = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"].get("requires_dist", [])
        for item in report["installed"]
    }
    direct = requirement_closure(installed, "dlrhub-client") - {"dlrhub-client"}
    assert {"grpcio", "protobuf"} <= direct
    # Anything else installed is required by grpcio or protobuf themselves (grpcio's
    # typing-extensions), never by the client.
    indirect = requirement_closure(installed, "grpcio") | requirement_closure(installed, "protobuf")
    assert set(installed) - VENV_TOOLS == {"dlrhub-client"} | indirect
    assert not {"sanic", "pymongo", "pydantic", "cryptography", "uvloop"} & set(installed)


def test_the_client_imports_without_the_server(consumer: Path) -> None:
    probe = (
        "import importlib.util, dlrhub.client, dlrhub.v1.status_service_pb2_grpc\n"
        f"print([name for name in {SERVER_MODULES!r} if importlib.util.find_spec(name)])\n"
        "print(dlrhub.client.DlrhubClient.__module__, dlrhub.__path__)"
    )
    done = run(consumer, "-c", probe, cwd=consumer.parent)
    absent, where = done.stdout.splitlines()
    assert absent == "[]"
    assert where.startswith("dlrhub.client.client _NamespacePath(")
    assert str(ROOT) not in where  # the venv's copy, not this checkout's


def mypy_strict(python: Path, program: Path) -> subprocess.CompletedProcess[str]:
    """This checkout's mypy, reading the packages installed for ``python`` (no config file)."""
    mypy = Path(sys.executable).parent / "mypy"
    flags = ("--strict", "--config-file", "", "--cache-dir", program.parent / ".mypy_cache")
    return run(
        mypy, *flags, "--python-executable", python, program, cwd=program.parent, check=False
    )


def test_a_consumer_passes_mypy_strict(consumer: Path, tmp_path: Path) -> None:
    program = tmp_path / "consumer.py"
    program.write_text(CONSUMER.read_text())
    done = mypy_strict(consumer, program)
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "Success: no issues found in 1 source file",
    )


def test_the_readme_example_passes_mypy_strict(consumer: Path, tmp_path: Path) -> None:
    readme = (ROOT / "client" / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    program = tmp_path / "readme_example.py"
    program.write_text(example)
    done = mypy_strict(consumer, program)
    assert done.returncode == 0, done.stdout


def test_mypy_sees_the_client_types(consumer: Path, tmp_path: Path) -> None:
    """A wrong call fails: the consumer run checks against the wheel's real signatures."""
    program = tmp_path / "wrong.py"
    source = CONSUMER.read_text()
    assert 'dlrhub.get("infobip", "m-1")' in source
    program.write_text(source.replace('dlrhub.get("infobip", "m-1")', 'dlrhub.get(1, "m-1")'))
    done = mypy_strict(consumer, program)
    assert done.returncode == 1
    assert 'Argument 1 to "get" of "DlrhubClient" has incompatible type "int"' in done.stdout


def test_the_server_wheel_installs_only_dlrhub_names(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist() if ".dist-info/" not in name}
    assert top == {"gateway", "statusd", "dlrhub_common", "dlrhub_cli"}
    assert not {"client", "common", "cli", "dlrhub"} & top  # dlrhub.* comes from dlrhub-client
    required = [Requirement(line) for line in wheel_metadata(wheel).get_all("Requires-Dist") or []]
    assert f"dlrhub-client=={CLIENT_PROJECT['version']}" in map(str, required)

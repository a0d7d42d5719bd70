"""The structure rules of the hand-written packages (never gen/): modules under 400 lines,
functions under 60 lines, and tests that mirror modules: ``<pkg>/<path>/<mod>.py`` is tested
by ``tests/<pkg>/<path>/test_<mod>.py``, or by a test module that names it in a comment such
as ``Covers dlrhub_cli/connect.py too: ...``. The client distribution's package
(``client/src/dlrhub/client``) is tested by ``tests/client/``. A ``__main__.py`` with logic
is mirrored by ``test_main.py``, an ``__init__.py`` with logic by ``test_init.py``; one with
no functions or classes needs no test."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PACKAGES = (
    "gateway",
    "statusd",
    "dlrhub_common",
    "dlrhub_cli",
    "client/src/dlrhub/client",
    "bench",
)
#: Package roots whose tests live under another name in tests/.
TEST_DIRS = {"client/src/dlrhub/client": "client"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

#: "Covers dlrhub_cli/connect.py too", "Covers statusd/storage/mongo.py, mongo_commit.py and
#: mongo_docs.py" (a bare name is a sibling of the path before it).
COVERS = re.compile(r"Covers\s+((?:[\w./]+\.py[,\s]*(?:and\s+)?)+)")
NAMED = re.compile(r"[\w./]+\.py")


@cache
def modules() -> tuple[str, ...]:
    """Every hand-written module, as ``pkg/path/mod.py``."""
    found = (path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    return tuple(sorted(path.relative_to(ROOT).as_posix() for path in found))


@cache
def tree(module: str) -> ast.Module:
    return ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)


def has_logic(module: str) -> bool:
    """True when the module defines a function or a class."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any(isinstance(node, kinds) for node in ast.walk(tree(module)))


def needs_mirror(module: str) -> bool:
    return Path(module).name not in ("__init__.py", "__main__.py") or has_logic(module)


def mirror_of(module: str) -> str:
    """``dlrhub_cli/render.py`` → ``tests/dlrhub_cli/test_render.py``."""
    for root, tests in TEST_DIRS.items():
        if module.startswith(root + "/"):
            module = tests + module[len(root) :]
    path = Path(module)
    stem = path.stem.strip("_")
    return (Path("tests") / path.parent / f"test_{stem}.py").as_posix()


def named_in(covers: str) -> list[str]:
    """The module paths a ``Covers`` clause names."""
    named, directory = [], ""
    for name in NAMED.findall(covers):
        if any(name.startswith(package + "/") for package in PACKAGES):
            directory = name.rsplit("/", 1)[0]
            named.append(name)
        elif directory and "/" not in name:
            named.append(f"{directory}/{name}")
    return named


@cache
def covered_by_comment() -> frozenset[str]:
    """Modules named in a ``Covers ...`` comment of some test module."""
    named: set[str] = set()
    for test_module in TESTS.rglob("test_*.py"):
        if test_module.resolve() == Path(__file__).resolve():
            continue  # the examples in this module name modules they do not test
        for covers in COVERS.findall(test_module.read_text(encoding="utf-8")):
            named.update(named_in(covers))
    return frozenset(named)


def mirrored(module: str) -> bool:
    return (ROOT / mirror_of(module)).is_file() or module in covered_by_comment()


def long_functions(module: str) -> list[tuple[str, int]]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree(module))
        if isinstance(node, kinds)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_packages_are_found() -> None:
    assert {next(p for p in PACKAGES if m.startswith(p + "/")) for m in modules()} == set(PACKAGES)
    assert not [module for module in modules() if module.startswith("gen/")]


@pytest.mark.parametrize("module", modules())
def test_module_is_short(module: str) -> None:
    lines = len((ROOT / module).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines: split it by responsibility"


@pytest.mark.parametrize("module", modules())
def test_functions_are_short(module: str) -> None:
    found = long_functions(module)
    assert not found, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {found}"


@pytest.mark.parametrize("module", [module for module in modules() if needs_mirror(module)])
def test_module_has_a_mirroring_test(module: str) -> None:
    assert mirrored(module), (
        f"{module} has no test module: add {mirror_of(module)}, or name {module} in a "
        "'Covers ...' comment at the top of the test module that tests it"
    )


def test_mirror_names() -> None:
    assert mirror_of("dlrhub_cli/render.py") == "tests/dlrhub_cli/test_render.py"
    assert mirror_of("client/src/dlrhub/client/retry.py") == "tests/client/test_retry.py"
    assert mirror_of("statusd/storage/sqlite.py") == "tests/statusd/storage/test_sqlite.py"
    assert mirror_of("bench/__main__.py") == "tests/bench/test_main.py"
    assert mirror_of("statusd/storage/__init__.py") == "tests/statusd/storage/test_init.py"
    assert [named_in(c) for c in COVERS.findall("# Covers dlrhub_cli/connect.py too: x")] == [
        ["dlrhub_cli/connect.py"]
    ]
    text = "store). Covers statusd/storage/mongo.py, mongo_commit.py,\nand mongo_docs.py."
    assert named_in(COVERS.findall(text)[0]) == [
        "statusd/storage/mongo.py",
        "statusd/storage/mongo_commit.py",
        "statusd/storage/mongo_docs.py",
    ]
    assert named_in("dlrhub_cli/main.py and client/src/dlrhub/client/retry.py, gen/x.py") == [
        "dlrhub_cli/main.py",
        "client/src/dlrhub/client/retry.py",
    ]

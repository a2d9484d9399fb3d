# SPDX-License-Identifier: MIT
"""The tests tree holds by structure: one folder per package, shared helpers in tests/support/.

A test module imports nothing from another test module or from a conftest: what two folders
share lives in tests/support/, and fixtures are registered once, in tests/conftest.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SUPPORT = "tests.support"


def module_name(path: Path) -> str:
    """The dotted name of a file under the repository (a package's __init__ is the package)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in source; `from a import b` gives a.b too,
    since b may be a module. Relative imports are resolved against `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if alias.name != "*"]
    return found


def foreign_test_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of anything under tests/ but tests.support: other test modules, conftests,
    helpers kept inside a test folder."""
    bad: dict[int, str] = {}
    for line, target in imported_modules(source, module, is_package):
        parts = target.split(".")
        if parts[0] != "tests" or len(parts) == 1:
            continue  # not the tests tree, or the bare package (from tests import support)
        if target == SUPPORT or target.startswith(SUPPORT + "."):
            continue
        bad.setdefault(line, target)  # one report per statement
    return [f"line {line}: {target}" for line, target in bad.items()]


def test_test_modules_import_only_tests_support() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        bad = foreign_test_imports(path.read_text(), module_name(path),
                                   is_package=path.name == "__init__.py")
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, ("import shared helpers from tests.support (fixtures are registered in "
                           f"tests/conftest.py), not from other test files: {offenders}")


@pytest.mark.parametrize("source", [
    "from tests.tui.conftest import aio",
    "from tests.faults.test_faults import DET",
    "import tests.core.test_store",
    "from tests.export import fixture",
    "from tests import core",
    "def f():\n    from tests.train.conftest import TINY",
])
def test_the_checker_sees_a_foreign_import(source: str) -> None:
    assert foreign_test_imports(source, "tests.cli.test_cli")


@pytest.mark.parametrize("source", ["from .conftest import aio", "from . import seed",
                                    "from ..faults.test_faults import DET"])
def test_the_checker_resolves_relative_imports(source: str) -> None:
    assert foreign_test_imports(source, "tests.tui.test_screens")


@pytest.mark.parametrize("source", [
    "from tests.support.tui import aio, pilot_wait_for",
    "from tests.support import store_load",
    "import tests.support.nvml_fake",
    "from .trainer import TINY",  # inside tests/support itself
    "from dinowm.store import Store\nimport pytest",
])
def test_the_checker_lets_tests_support_through(source: str) -> None:
    assert foreign_test_imports(source, "tests.support.supervised") == []


# Folders of tests/ that are no package's: the flat modules of dinowm/, cross-cutting fault
# injection (docs/RELIABILITY.md), the shared helpers.
NOT_A_PACKAGE = {"core", "faults", "support"}


def test_the_tests_tree_mirrors_the_package_tree() -> None:
    packages = {p.parent.name for p in (REPO / "dinowm").glob("*/__init__.py")} | {"tui"}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == packages | NOT_A_PACKAGE, (
        f"one tests/ folder per package: missing {sorted(packages - folders)}, "
        f"unexpected {sorted(folders - packages - NOT_A_PACKAGE)}")
    assert all((TESTS / f / "__init__.py").exists() for f in folders)  # distinct module names

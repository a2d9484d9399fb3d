# SPDX-License-Identifier: MIT
"""Every test runs in its own folder with its own dinowm.toml and never touches the home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.supervised import Project
from tests.support.trainer import make_run_dir

# Fixtures defined next to the helpers they belong to, registered here once for every folder.
pytest_plugins = ["tests.support.alerts", "tests.support.process", "tests.support.slurm"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a fresh tmp folder; caches and config lookups point inside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DINOWM_CONFIG", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)  # no desktop notifications
    return tmp_path


@pytest.fixture
def tiny_run(tmp_path: Path):
    """A tiny run folder in this test's folder: tiny_run(run_id, overrides=()) (make_run_dir)."""
    return lambda run_id, overrides=(): make_run_dir(tmp_path, run_id, list(overrides))


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A project folder holding the shipped dinowm.toml."""
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", tmp_path / "dinowm.toml")
    return tmp_path


def _run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `dinowm` command in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "dinowm", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    """The real `dinowm` command as a function: cli("runs", cwd=...) → CompletedProcess."""
    return _run_cli


@pytest.fixture
def project(tmp_path: Path):
    """A project folder for supervised runs (tests/support/supervised.py: Project)."""
    return Project(tmp_path)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist's --dist loadgroup (make test), a test goes to whichever worker is
    free, except that the tests of a file using a fixture of this tree built once per module or
    per session (a trained run, a Slurm cluster, a receiver) stay together on one worker, so
    that it is built once."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = any(
            d.scope in ("module", "session") and d.func.__module__.startswith("tests")
            for defs in info.name2fixturedefs.values()
            for d in defs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))

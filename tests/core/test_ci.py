# SPDX-License-Identifier: MIT
"""`.ci/run` must fail when pytest collects nothing (pytest exit code 5)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_run_fails_without_tests(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / ".ci").mkdir(parents=True)
    (clone / "tests").mkdir()
    shutil.copy(REPO / ".ci" / "run", clone / ".ci" / "run")
    shutil.copy(REPO / "Makefile", clone / "Makefile")
    shutil.copy(REPO / "pyproject.toml", clone / "pyproject.toml")
    os.utime(clone / "pyproject.toml", (0, 0))  # older than the venv stamp: no reinstall
    venv = Path(sys.executable).parent.parent
    # PYTEST_ARGS empty: the interpreter running this test may lack pytest-xdist (the 3.10 core venv).
    assert (venv / ".installed").exists()
    out = subprocess.run([str(clone / ".ci" / "run")], cwd=clone, capture_output=True, text=True,
                         env={**os.environ, "VENV": str(venv), "PYTEST_ARGS": ""}, timeout=300)
    assert out.returncode != 0
    assert "no tests ran" in out.stdout + out.stderr

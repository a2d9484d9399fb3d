# SPDX-License-Identifier: MIT
"""Boundaries: the UI and the core never pull in torch; the trainer never speaks SQL."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["tui.app", "dinowm.cli", "dinowm.store", "dinowm.config",
                                    "dinowm.supervise.hardware", "dinowm.cli.views",
                                    "dinowm.export"])
def test_no_torch(module: str) -> None:
    assert "torch" not in _modules_after(f"import {module}")


def test_the_config_does_not_load_the_alerts() -> None:
    """Every trainer reads dinowm.toml; checking and sending alerts is the supervisor's part."""
    loaded = _modules_after("import dinowm.config")
    assert "dinowm.config" in loaded
    assert sorted(m for m in loaded if m.split(".")[:2] == ["dinowm", "alerts"]) == []

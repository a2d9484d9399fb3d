"""The trainer tests' fixture: a tiny run folder in this test's folder (tests/support/trainer.py
has the helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.trainer import make_run_dir


@pytest.fixture
def tiny_run(tmp_path: Path):
    """make_run_dir bound to this test's folder."""
    return lambda run_id, overrides=(): make_run_dir(tmp_path, run_id, list(overrides))

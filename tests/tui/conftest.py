# SPDX-License-Identifier: MIT
"""Fixtures of the TUI tests: fixed time zone, a seeded project, a project for live runs.

The helpers (aio, screen_text, pilot_wait_for, db_rows, ...) are in tests/support/tui.py."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dinowm.supervise.procinfo import ProcessRef, kill_group
from tests.support.tui import db_rows
from tests.support.tui_seed import seed_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times render in UTC whatever the machine's zone; OMP stays single-threaded."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """dinowm.toml of a project with four fixed runs."""
    return seed_project(tmp_path)


@pytest.fixture
def live_project(tmp_path: Path) -> Iterator[Path]:
    """An empty project for real supervised runs; leftovers are stopped by pid afterwards."""
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", tmp_path / "dinowm.toml")
    yield tmp_path / "dinowm.toml"
    db = tmp_path / "runs.db"
    if not db.exists():
        return
    rows = db_rows(tmp_path / "dinowm.toml",
                   "select supervisor_pid, supervisor_start, pid, pid_start from runs")
    for row in rows:
        for pid, start in ((row["supervisor_pid"], row["supervisor_start"]),
                           (row["pid"], row["pid_start"])):
            if pid and ProcessRef(pid, start or -1).alive():
                kill_group(pid, None, grace_s=5.0)

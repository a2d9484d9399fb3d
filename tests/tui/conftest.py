"""Helpers for the TUI tests: fixed time zone, a seeded project, plain-text screens, waits."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

from dinowm.store import Store
from dinowm.supervise.procinfo import ProcessRef, kill_group
from tests.support.trainer import TINY
from tests.tui.seed import NOW, seed_project

REPO = Path(__file__).resolve().parents[2]
LIVE = [*TINY, "training.epochs=2", "training.max_steps_per_epoch=3", "watchdog.backoff_s=0"]


def aio(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test function with asyncio.run (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


class FakeGpu:
    """A GPU source with fixed readings (one GPU, hot, thermally throttled)."""

    available, reason = True, "ok"

    def sample(self) -> list[dict[str, Any]]:
        return [{"t": NOW, "gpu": 0, "temp_c": 84.0, "power_w": 183.0, "power_limit_w": 300.0,
                 "util_pct": 97.0, "mem_used_mib": 8090.0, "mem_total_mib": 81559.0,
                 "throttle": 0x20 | 0x1}]

    def close(self) -> None:
        pass


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


def screen_text(app: App) -> str:
    """The current screen as plain text (what a terminal would show, without colours)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


async def wait_for(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 20.0,
                   what: str = "") -> Any:
    """Let the app run until predicate() is truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def db_rows(config: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of runs.db next to config (a fresh connection each time)."""
    Store(config.parent / "runs.db").close()  # creates and migrates it like the app would
    conn = sqlite3.connect(config.parent / "runs.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def keep_env() -> dict[str, str]:
    """The environment of subprocesses started by the tests."""
    return {**os.environ, "COLUMNS": "200"}

# SPDX-License-Identifier: MIT
"""Helpers for the TUI tests: async tests, plain-text screens, waits under a Pilot, runs.db rows,
a fake GPU, the app as the tests build it."""

from __future__ import annotations

import asyncio
import functools
import io
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

from dinowm.store import Store
from tests.support.trainer import TINY
from tests.support.tui_seed import NOW
from tui.app import build_app
from tui.widgets.runs_table import RunsTable

# The overrides of a real supervised run the app launches: the tiny model, 2 short epochs.
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


def screen_text(app: App) -> str:
    """The current screen as plain text (what a terminal would show, without colours)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


async def pilot_wait_for(pilot: Pilot, predicate: Callable[[], Any], timeout: float = 20.0,
                         what: str = "") -> Any:
    """Let the app run until predicate() is truthy; fail after timeout seconds.

    Awaited under a Pilot, so the app keeps processing while it waits; plain code waits with
    tests.support.process.wait_until.
    """
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


def app_for(config: Path, **services: object):
    """The real app with fast polling and the tiny trainer's overrides in the modal."""
    return build_app(config, gpu=None, poll_s=0.3, initial_overrides=tuple(LIVE), **services)


def cell(app, run_id: str, column: str) -> str:
    """Plain text of one runs-table cell, or '' while the row is not shown."""
    table = app.screen.query_one(RunsTable)
    return table.texts(run_id)[column].plain if run_id in table.rows else ""

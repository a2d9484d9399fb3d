# SPDX-License-Identifier: MIT
"""Hostile text on the app's screens: the runs, a run's tabs, an incident in full and the
queue show it as it reads (no markup, no control character on the screen), and the new-run
dialog refuses a name with a control character as `dinowm run --name` does."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from textual.widgets import Input

from tests.support.hostile import KEYS, RUN, controls, hostile, hostile_project
from tests.support.tui import aio, db_rows, pilot_wait_for, screen_text
from tests.support.tui_seed import NOW
from tui.app import build_app
from tui.screens.incident import IncidentScreen
from tui.screens.new_run import NewRunModal
from tui.screens.queue import QueueScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen

# The marker leads each text: a narrow cell shows the start of what it holds.
TEXTS = st.fixed_dictionaries({key: hostile(f"MK{key.replace('_', '')}", lead=True)
                               for key in KEYS})


def _app(config: Path):
    return build_app(config, gpu=None, clock=lambda: NOW, poll_s=0.2)


async def wait(pilot, predicate: Callable[[], Any], what: str = "") -> Any:
    """pilot_wait_for with a deadline generous for two busy cores (it never pauses longer)."""
    return await pilot_wait_for(pilot, predicate, timeout=60.0, what=what)


async def _shows(pilot, *keys: str, what: str) -> None:
    """The screen comes to show every key's marker, and never a control character."""
    markers = [f"MK{key.replace('_', '')}" for key in keys]
    await wait(pilot, lambda: all(m in screen_text(pilot.app) for m in markers),
               what=f"{markers} on the {what}")
    text = screen_text(pilot.app)
    assert not controls(text), (what, controls(text), text)


async def _every_screen(config: Path) -> None:
    app = _app(config)
    async with app.run_test(size=(200, 60)) as pilot:
        await _shows(pilot, "name", what="runs screen")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run)
        await _shows(pilot, "name", what="run screen")
        for tab, keys in (("3", ("data_path",)), ("4", ("summary",)), ("5", ("note",)),
                          ("6", ("log",)), ("7", ("checkpoint",))):
            await pilot.press(tab)
            await _shows(pilot, *keys, what=f"tab {tab}")
        await pilot.press("4")
        await wait(pilot, lambda: getattr(app.focused, "id", None) == "incident-list")
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, IncidentScreen))
        await _shows(pilot, "summary", "detail", what="incident screen")
        await pilot.press("escape")
        await wait(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("escape")
        await wait(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("Q")
        await wait(pilot, lambda: isinstance(app.screen, QueueScreen))
        await _shows(pilot, "entry", what="queue screen")  # overrides: last, off a wide row


# Not shrunk: a failing example is reported as drawn (shrinking an app's run takes minutes).
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(texts=TEXTS)
def test_every_screen_shows_hostile_text_literally(texts: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_every_screen(hostile_project(Path(tmp), texts)))


@aio
async def test_the_new_run_dialog_refuses_a_name_with_control_characters(tmp_path: Path) -> None:
    config = hostile_project(tmp_path, {key: "plain" for key in KEYS})
    app = _app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in ("ctrl+s", "ctrl+o"):  # Start, then Queue
            await pilot.press("n")
            modal = await wait(pilot, lambda: isinstance(app.screen, NewRunModal) and app.screen)
            modal.query_one("#name", Input).value = "b16\x1b[31m"
            await pilot.press(key)
            await wait(pilot, lambda: "holds control characters" in screen_text(app), "the refusal")
            assert app.screen is modal  # nothing started, nothing queued
            modal.query_one("#name", Input).value = ""  # the field shows what was typed
            await pilot.pause()
            text = screen_text(app)
            assert "name 'b16\\x1b[31m' holds control characters" in text and not controls(text)
            await pilot.press("escape")
            await wait(pilot, lambda: isinstance(app.screen, RunsScreen))
    assert [r["id"] for r in db_rows(config, "select id from runs")] == [RUN]
    assert len(db_rows(config, "select id from queue")) == 1

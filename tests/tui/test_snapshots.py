# SPDX-License-Identifier: MIT
"""Screens as plain text at fixed sizes against committed golden files (fixed data and clock).

Regenerate after an intended change:  DINOWM_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_snapshots.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from tests.support.tui import FakeGpu, aio, pilot_wait_for, screen_text
from tests.support.tui_seed import NOW, RUNS
from tui.app import build_app
from tui.screens.new_run import NewRunModal
from tui.screens.run import RunScreen
from tui.widgets.log_tail import LogTail

GOLDEN = Path(__file__).with_name("snapshots")
SIZES = [(80, 24), (120, 40)]


def check(name: str, text: str, root: Path) -> None:
    """Compare with the golden file (the project folder is written as <project>)."""
    text = text.replace(str(root), "<project>") + "\n"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("DINOWM_UPDATE_SNAPSHOTS") or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        if not os.environ.get("DINOWM_UPDATE_SNAPSHOTS"):
            pytest.fail(f"{path} did not exist: written now, check it and commit it")
        return
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            "golden", "now"))
        pytest.fail(f"{name} differs from {path} (DINOWM_UPDATE_SNAPSHOTS=1 rewrites it):\n"
                    f"{diff}")


def app_for(config: Path, **services: object):
    app = build_app(config, gpu=FakeGpu, clock=lambda: NOW, poll_s=3600, **services)
    app.animation_level = "none"
    return app


async def ready(pilot, app) -> None:
    """Runs loaded, the GPU strip filled, the footer drawn."""
    await pilot_wait_for(pilot, lambda: getattr(app.screen, "loaded", False) and app.gpu_rows)
    await settled(pilot, app)


async def settled(pilot, app) -> None:
    """Wait until the footer shows keys and two renderings 0.1 s apart agree."""
    await pilot_wait_for(pilot, lambda: screen_text(app).splitlines()[-1].strip(), what="footer")
    previous = ""
    while (text := screen_text(app)) != previous:
        previous = text
        await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@aio
async def test_runs_screen(seeded: Path, size: tuple[int, int]) -> None:
    app = app_for(seeded)
    async with app.run_test(size=size) as pilot:
        await ready(pilot, app)
        check(f"runs_{size[0]}x{size[1]}", screen_text(app), seeded.parent)


@pytest.mark.parametrize("size,tab", [((80, 24), "1"), ((120, 40), "2")],
                         ids=["80x24-epochs", "120x40-plots"])
@aio
async def test_run_screen(seeded: Path, size: tuple[int, int], tab: str) -> None:
    app = app_for(seeded)
    async with app.run_test(size=size) as pilot:
        await ready(pilot, app)
        await pilot.press("down", "down", "enter")  # lr-high: running, 2 incidents, a note
        screen = await pilot_wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                                      and app.screen.run is not None and app.screen)
        assert screen.run_id == RUNS[1][0]
        await pilot_wait_for(pilot, lambda: screen.query_one(LogTail).line_count >= 4)
        await pilot.press(tab)
        await settled(pilot, app)
        check(f"run_{size[0]}x{size[1]}", screen_text(app), seeded.parent)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@aio
async def test_new_run_modal(seeded: Path, size: tuple[int, int]) -> None:
    app = app_for(seeded, initial_overrides=("training.epochs=50", "frameskip=3"))
    async with app.run_test(size=size) as pilot:
        await ready(pilot, app)
        await pilot.press("n")
        modal = await pilot_wait_for(pilot, lambda: isinstance(app.screen, NewRunModal)
                                     and app.screen)
        await pilot_wait_for(pilot, lambda: modal.last is not None)
        await settled(pilot, app)
        check(f"new_run_{size[0]}x{size[1]}", screen_text(app), seeded.parent)

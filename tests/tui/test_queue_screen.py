# SPDX-License-Identifier: MIT
"""The queue screen (Q from the runs screen) and the new-run modal's Queue button, against a
real runs.db: entries with their states, reorder, remove after a confirmation, pause, start."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from dinowm.config import load_project
from dinowm.queue import entries
from tests.support.tui import aio, app_for, db_rows, pilot_wait_for, screen_text
from tui.screens.new_run import NewRunModal
from tui.screens.queue import QueueScreen


def _order(config: Path) -> list[str]:
    return [r["name"] for r in db_rows(config, "select name from queue where state = 'queued' "
                                               "order by position")]


@aio
async def test_the_queue_screen_reorders_removes_pauses_and_starts(project_dir: Path) -> None:
    config = project_dir / "dinowm.toml"
    project = load_project(config)
    for name in ("a", "b"):
        entries.add(project, "demo", ["training.epochs=1"], name)
    started = []
    app = app_for(config, spawn_queue=lambda p: started.append(p) or 4242)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("Q")
        screen = await pilot_wait_for(pilot, lambda: isinstance(app.screen, QueueScreen)
                                      and app.screen)
        table = screen.query_one(DataTable)
        await pilot_wait_for(pilot, lambda: table.row_count == 2, what="two entries")
        assert "2 queued" in screen_text(app) and "queued" in screen_text(app)
        await pilot.press("down", "u")  # b up
        await pilot_wait_for(pilot, lambda: _order(config) == ["b", "a"], what="b first")
        await pilot.press("n")  # a third entry from the new-run modal's Queue button
        modal = await pilot_wait_for(pilot, lambda: isinstance(app.screen, NewRunModal)
                                     and app.screen)
        await pilot.click("#name")
        await pilot.press("c", "ctrl+o")
        await pilot_wait_for(pilot, lambda: _order(config) == ["b", "a", "c"] and
                             not isinstance(app.screen, NewRunModal), what="c queued")
        assert modal.error is None
        await pilot_wait_for(pilot, lambda: table.row_count == 3, what="three rows")
        table.move_cursor(row=0)
        await pilot.press("x")
        await pilot.press("y")  # the confirmation
        await pilot_wait_for(pilot, lambda: _order(config) == ["a", "c"], what="b removed")
        await pilot.press("p")
        await pilot_wait_for(pilot, lambda: "paused" in screen_text(app), what="paused")
        await pilot.press("g")
        await pilot_wait_for(pilot, lambda: started == [project], what="a queue supervisor")
        assert db_rows(config, "select value from queue_settings where key = 'paused'") == \
            [{"value": "0"}]

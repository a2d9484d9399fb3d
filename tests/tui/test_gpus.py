# SPDX-License-Identifier: MIT
"""The new-run modal's GPU count: `dinowm run --gpus` from the TUI, refused without a GPU."""

from __future__ import annotations

from pathlib import Path

from tests.support.tui import aio, app_for, db_rows, pilot_wait_for
from tui.screens.new_run import NewRunModal


@aio
async def test_gpus_without_a_gpu_are_refused_with_the_clis_line(live_project: Path) -> None:
    app = app_for(live_project)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        modal = await pilot_wait_for(pilot, lambda: isinstance(app.screen, NewRunModal)
                                     and app.screen, what="the new-run modal")
        await pilot_wait_for(pilot, lambda: modal.last and modal.last.check.ok,
                             what="a valid configuration")
        modal.query_one("#gpus").focus()
        await pilot.press(*"2x!")
        assert modal.query_one("#gpus").value == "2x"  # only digits and letters get in
        await pilot.press("ctrl+s")
        errors = await pilot_wait_for(pilot, lambda: [t for s, t in app.notices
                                                      if s == "error"], what="the refusal")
        assert errors == ["--gpus 2x: give a number of GPUs (1, 2, ...) or 'auto'."]
        await pilot.press("n")
        modal = await pilot_wait_for(pilot, lambda: isinstance(app.screen, NewRunModal)
                                     and app.screen, what="the modal again")
        await pilot_wait_for(pilot, lambda: modal.last and modal.last.check.ok)
        modal.query_one("#gpus").focus()
        await pilot.press("2", "ctrl+s")
        await pilot_wait_for(pilot, lambda: len([t for s, t in app.notices if s == "error"])
                             == 2, what="the second refusal")
        last = [t for s, t in app.notices if s == "error"][-1]
        assert last.startswith("--gpus 2: no GPU is visible on this machine (NVML: ")
    assert db_rows(live_project, "select * from runs") == []  # nothing created


def test_the_run_screen_says_how_many_ranks_a_run_trains_on() -> None:
    import json

    from tui.screens.run import run_header

    run = {"status": "running", "name": "two", "id": "r", "epoch": 1, "epochs_target": 3,
           "attempts": 1, "started_at": 10.0}
    assert "ranks" not in run_header(run, 20.0).plain
    run["start_json"] = json.dumps({"world_size": 2, "device": "cuda:0"})
    assert "attempt 1  2 ranks  10s" in run_header(run, 20.0).plain


def test_the_run_screen_lists_each_gpus_epochs_for_a_run_on_several_gpus() -> None:
    import json

    from tui.widgets.run_tables import gpu_rows

    assert gpu_rows([{"epoch": 1, "gpus_json": None}]) == {}
    rows = gpu_rows([{"epoch": 2, "gpus_json": json.dumps(
        [{"gpu": 0, "max_temp_c": 71.0, "mean_power_w": 250.4, "mean_util": 97.0,
          "max_mem_mib": 7800.0}, {"gpu": 1, "max_temp_c": 69.0}])}])
    assert list(rows) == ["2:0", "2:1"]
    assert [t.plain for t in rows["2:0"]] == ["2", "0", "71", "250", "97", "7800"]
    assert [t.plain for t in rows["2:1"]][3:] == ["-", "-", "-"]

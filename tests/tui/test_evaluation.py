# SPDX-License-Identifier: MIT
"""The run screen's Evaluation tab and the epochs' rollout column, on a seeded runs.db."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dinowm.config import load_project
from dinowm.errors import DinowmError
from dinowm.store import Store
from tests.support.evaluations import sample_record
from tests.support.tui import aio, pilot_wait_for
from tests.support.tui_seed import NOW, RUNS
from tui import operations
from tui.app import build_app
from tui.screens.run import RunScreen
from tui.services import Services
from tui.widgets.run_tables import KeyedTable

BASELINE = RUNS[0][0]


def plain(table: KeyedTable, key: str) -> list[str]:
    return [cell.plain if hasattr(cell, "plain") else str(cell) for cell in table.shown[key]]


@aio
async def test_evaluation_tab_shows_checkpoints_best_and_the_selected_curve(seeded: Path) -> None:
    with Store(seeded.parent / "runs.db") as store:
        # epoch 2 plans best; epoch 6 has the baseline's lowest val loss (1.1 / 6)
        store.add_evaluation(sample_record(BASELINE, "epoch_0002.pth", 2,
                                           metrics={"plan_score": 0.5}))
        store.add_evaluation(sample_record(BASELINE, "epoch_0006.pth", 6))
        store.upsert_epoch(BASELINE, 6, {"val_z_visual_err_rollout": 0.123})
    app = build_app(seeded, gpu=None, clock=lambda: NOW, poll_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = RunScreen(app.services, BASELINE)
        await app.push_screen(screen)
        table = screen.query_one("#eval-table", KeyedTable)
        await pilot_wait_for(pilot, lambda: len(table.shown) == 2, what="two evaluations")
        await pilot.press("7")
        assert screen.query_one("TabbedContent").active == "evaluation"
        assert list(table.shown) == ["epoch_0002.pth", "epoch_0006.pth"]  # by plan score
        assert plain(table, "epoch_0002.pth")[:4] == ["epoch_0002.pth ★", "2", "0.55", "0.25"]
        assert plain(table, "epoch_0006.pth")[0] == "epoch_0006.pth ◆"
        assert plain(table, "epoch_0006.pth")[-1] == "completed"
        best = str(screen.query_one("#eval-best").render())
        assert "Best by planning: epoch_0002.pth (plan score 0.5); best by val loss: " \
               "epoch_0006.pth" in best
        curve = screen.query_one("#eval-curve", KeyedTable)
        await pilot_wait_for(pilot, lambda: len(curve.shown) == 5, what="the horizon curve")
        assert plain(curve, "5")[:2] == ["5", "0.4167"]  # epoch 2's z_visual_err at H=5
        await pilot.press("down")
        await pilot_wait_for(pilot, lambda: plain(curve, "5")[1] == "0.2643",
                             what="epoch 6's curve after moving the cursor")
        epochs = screen.query_one("#epoch-table", KeyedTable)
        assert plain(epochs, "6")[-1] == "0.123" and plain(epochs, "5")[-1] == "-"


@pytest.mark.extended
@aio
async def test_v_evaluates_the_run_in_the_background_and_x_stops_it(tmp_path: Path) -> None:
    """A really trained tiny run: v with options starts `dinowm eval` detached, its progress
    shows in the tab, x stops it; a second, short evaluation fills the table."""
    from tests.support.supervised import Project, tiny

    project = Project(tmp_path)
    out = project.cli("run", *tiny("training.epochs=1"))
    assert out.returncode == 0, out.stderr[-2000:]
    run_id = project.run_row()["id"]
    app = build_app(tmp_path / "dinowm.toml", gpu=None, poll_s=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = RunScreen(app.services, run_id)
        await app.push_screen(screen)
        await pilot.press("7")
        running = screen.query_one("#eval-running")

        async def evaluate(options: str) -> None:
            await pilot.press("v")
            await pilot_wait_for(pilot, lambda: app.screen.query("#prompt"), what="the prompt")
            app.screen.query_one("#prompt").value = options
            await pilot.press("enter")

        await evaluate("--planner gd --gd-steps 100000 --episodes 2 --horizon 2")
        await pilot_wait_for(pilot, lambda: "gradient step" in str(running.render()),
                             timeout=60, what="the evaluation's progress")
        await pilot.press("x")
        await pilot_wait_for(pilot, lambda: "v evaluates" in str(running.render()),
                             timeout=60, what="the stopped evaluation")
        await evaluate("--cem-topk 999")  # refused in one line before anything starts
        await pilot_wait_for(pilot, lambda: any("--cem-topk 999 is out of range" in str(n.message)
                                                for n in app._notifications),
                             what="the refusal")
        await evaluate("--planner cem --episodes 2 --horizon 2 --cem-samples 16 "
                       "--cem-topk 4 --cem-iterations 2")
        table = screen.query_one("#eval-table", KeyedTable)
        await pilot_wait_for(pilot, lambda: len(table.shown) == 1, timeout=60,
                             what="the evaluation's row")
        assert plain(table, "epoch_0001.pth")[0].startswith("epoch_0001.pth")


def test_bad_evaluation_options_are_refused_in_one_line_without_a_child(
        seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The v prompt's options are parsed and checked in this process, as `dinowm eval` checks
    them: no child process starts for a typo."""
    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a child process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    monkeypatch.setattr(subprocess, "run", no_child)
    services = Services(load_project(seeded))
    for text, message in (("--cem-topk 999", "--cem-topk 999 is out of range"),
                          ("--planner mppi", "--planner mppi: use cem, gd or both"),
                          ("--episodes four", "--episodes 'four' is not an int"),
                          ("--bogus 1", "--bogus: not an option of dinowm eval"),
                          ("-k 2 --horizon", "--horizon needs a value"),
                          ("--device tpu", "--device tpu: use one of auto, cpu, cuda"),
                          ("--episodes=2", "has no committed checkpoint yet")):
        with pytest.raises(DinowmError) as refused:
            operations.evaluate(services, BASELINE, text)
        assert message in str(refused.value) and "\n" not in str(refused.value), text


def test_checked_options_read_back_the_same_from_their_arguments(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """What a detached `dinowm eval` is given (Evaluation.argv) asks for the same request."""
    from dinowm.evaluate import request

    monkeypatch.setattr(request, "choose_checkpoints", lambda run_dir, which: [which])
    first = request.parse("-k 3 --planner cem --gd-lr=0.5 --device cpu --stall-s 20", tmp_path)
    again = request.parse(first.argv, tmp_path)
    assert again == first and first.stall_s == 20.0
    assert first.request["episodes"] == 3 and first.request["planners"] == ["cem"]
    assert first.request["gd"]["lr"] == 0.5 and first.request["device"] == "cpu"

"""The run screen's Evaluation tab and the epochs' rollout column, on a seeded runs.db."""

from __future__ import annotations

from pathlib import Path

from dinowm.store import Store
from tests.support.evaluations import sample_record
from tests.support.tui import aio, pilot_wait_for
from tests.support.tui_seed import NOW, RUNS
from tui.app import build_app
from tui.screens.run import RunScreen
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

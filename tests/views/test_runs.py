# SPDX-License-Identifier: MIT
"""One view of a run for every face: its columns, values and cells, and which columns give way
on a narrow terminal (the CLI's table and the TUI's both render these: tests/cli, tests/tui)."""

from __future__ import annotations

import time

from dinowm.views import runs as view


def _run(**fields: object) -> dict:
    now = time.time()
    return {"id": "20260107-093348-ab12", "name": "franka-1", "preset": "franka_f5_h3",
            "status": "completed", "epoch": 3, "epochs_target": 6, "last_train_loss": 0.1234,
            "last_val_loss": 0.2345, "best_z_err_pred": 0.0456, "last_z_err_pred": 0.05,
            "max_gpu_temp_c": 81.0, "attempts": 2, "incident_count": 1, "created_at": now - 90,
            "started_at": now - 80, "ended_at": now - 20.0, **fields}


def test_a_run_s_cells_are_its_values_formatted() -> None:
    cells = view.texts(view.values(_run(), [], time.time()))
    assert set(cells) == {c.key for c in view.COLUMNS} | {"placement"}
    assert cells["epoch"].plain.startswith("  3/6") and cells["temp"].plain == "-/81"
    assert cells["placement"].plain == "-" and cells["attempts"].plain == "2"
    assert cells["duration"].plain == "1m 00s"  # started_at to ended_at


def test_a_cluster_run_places_its_column_after_the_name() -> None:
    runs = [_run(), _run(id="x", slurm_job_id="12", slurm_state="RUNNING", slurm_nodes="n1")]
    assert view.placed(runs) and not view.placed(runs[:1])
    keys = [c.key for c in view.columns(["id", "name", "status"], placed=True)]
    assert keys == ["id", "name", "placement", "status"]
    assert view.texts(view.values(runs[1], [], time.time()))["placement"].plain == \
        "job 12 RUNNING on n1"


def test_a_narrow_terminal_drops_the_least_needed_columns_first() -> None:
    cols = view.columns()
    rows = [view.texts(view.values(_run(), [], time.time()))]
    wide = view.fitting(cols, rows, 400)
    narrow = view.fitting(cols, rows, 80)
    assert wide == list(cols)
    kept = {c.key for c in narrow}
    assert {c.key for c in cols if c.drop == 0} <= kept  # these always stay
    assert "preset" not in kept and "mark" not in kept  # the first to give way
    assert len(narrow) < len(wide)


def test_sorting_puts_live_runs_first_and_missing_values_last() -> None:
    assert view.sort_key("status", "running") < view.sort_key("status", "completed")
    assert view.sort_key("train", 0.5) < view.sort_key("train", None)
    assert view.sort_key("epoch", (3, 6)) < view.sort_key("epoch", (5, 6))

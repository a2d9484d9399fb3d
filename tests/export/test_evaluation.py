# SPDX-License-Identifier: MIT
"""The log's Evaluation section and the epochs' rollout errors, from a seeded runs.db."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dinowm import rundir
from dinowm.export import export_log
from dinowm.store import Store
from tests.support.evaluations import RUN_A, seed_evaluated


def test_evaluation_section_table_best_horizon_plot_and_goal_links(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    db = seed_evaluated(tmp_path / "project")
    goal = rundir.eval_dir(tmp_path / "project" / "outputs" / RUN_A, "epoch_0002.pth") / \
        "goal_00.png"
    goal.parent.mkdir(parents=True)
    goal.write_bytes(b"png")
    (tmp_path / "log").mkdir()
    out = tmp_path / "log" / "run.md"
    with Store(db) as store:
        result = export_log(store, out, [RUN_A], tz=dt.timezone.utc, now=1_767_800_000.0)
        export_log(store, tmp_path / "log" / "de.md", [RUN_A], lang="de", tz=dt.timezone.utc)
    text = out.read_text()
    section = text[text.index("## 4.1 Evaluation of Checkpoints"):text.index("## 5. Start")]
    assert "**Best by planning:** `epoch_0002.pth` (Plan Score 0.7333); best by val loss: " \
           "`epoch_0003.pth` (Val Loss 0.35): the lowest val loss is not the checkpoint " \
           "that plans best." in section
    assert "| `epoch_0002.pth` ★ | 2 | 0.4 | 0.2 | 0.4167 | 0.7333 | 0.8333 | 0.7333 | 0.97 " \
           "| 17.5 | completed |" in section
    assert section.index("`epoch_0002.pth` ★") < section.index("`epoch_0003.pth` ◆")
    assert "[goal_00.png](../project/outputs/" + RUN_A + "/eval/epoch_0002/goal_00.png)" \
        in section  # only the picture that exists, relative to the log
    assert "goal_01.png" not in section
    horizon = out.with_name(f"run-{RUN_A}-horizon.svg")
    assert horizon in result.images and f"]({horizon.name})" in section
    svg = horizon.read_text()
    assert svg.count("<polyline") == 2 and "epoch_0003.pth" in svg and "Horizon step" in svg
    # the trainer's rollout errors: status rows and one epoch-log column (H / from one frame)
    assert "| Val Rollout z | 0.525 (Epoch 3) |" in text
    assert "| Best Val Rollout z | 0.525 (Epoch 3) |" in text
    assert "| 3 | 0.4 | 0.35 | 0.175 | 0.525 / 0.7 | " in text
    german = (tmp_path / "log" / "de.md").read_text()
    assert "## 4.1 Evaluation der Checkpoints" in german and "**Am besten beim Planen:**" in german
    assert "Val Rollout z (H / 1 Frame)" in german

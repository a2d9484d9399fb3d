# SPDX-License-Identifier: MIT
"""`dinowm evals`: the comparison of evaluated checkpoints, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

from dinowm.store import Store
from tests.support.evaluations import RUN_A, RUN_B, seed_evaluated


def test_evals_compares_checkpoints_and_names_both_bests(tmp_path: Path, cli) -> None:
    seed_evaluated(tmp_path)
    out = cli("evals", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if ".pth " in line
            and not line.startswith("Best")]
    marks = [r[0] if r[0] in ("★", "◆", "★◆") else "" for r in rows]
    cells = [r[1:] if mark else r for r, mark in zip(rows, marks)]
    # sorted by plan score, the stopped one without a score last; ★ best plan, ◆ best val loss
    assert [(c[0], c[1], c[3], c[6], c[-1]) for c in cells] == [
        ("run-0", "epoch_0002.pth", "0.4", "0.7333", "completed"),
        ("run-1", "epoch_0001.pth", "0.6", "0.9", "completed"),
        ("run-0", "epoch_0003.pth", "0.35", "0.95", "completed"),
        ("run-1", "epoch_0002.pth", "0.55", "-", "stopped")]
    assert marks == ["★", "", "◆", ""]
    assert ("Best by planning: run-0/epoch_0002.pth (plan score 0.7333); best by val loss: "
            "run-0/epoch_0003.pth (val loss 0.35)") in " ".join(out.stdout.split())
    data = json.loads(cli("evals", "--json", RUN_B, cwd=tmp_path).stdout)
    assert [(r["checkpoint"], r["val_loss"]) for r in data["rows"]] == \
        [("epoch_0001.pth", 0.6), ("epoch_0002.pth", 0.55)]
    assert data["best_by_planning"] == {"run_id": RUN_B, "checkpoint": "epoch_0001.pth"}
    assert data["rows"][0]["curves"]["horizon"] == [1, 2, 3, 4, 5]
    assert "rollout" in cli("show", RUN_A, cwd=tmp_path).stdout  # the epochs' rollout column


def test_evals_errors_are_one_line_naming_the_run_and_the_fix(tmp_path: Path, cli) -> None:
    seed_evaluated(tmp_path)
    help_text = cli("evals", "--help", cwd=tmp_path).stdout
    assert "Examples" in help_text and "oracle ratio" in help_text and "--json" in help_text
    out = cli("evals", "unknown-run", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: No run matches 'unknown-run'; 'dinowm runs' lists the run ids."]
    with Store(tmp_path / "runs.db") as store:
        store.create_run({"id": "r3", "config_json": "{}", "config_hash": "h",
                          "status": "completed"})
    out = cli("evals", "r3", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "No evaluations of r3 yet; 'dinowm eval RUN'" in out.stderr

# SPDX-License-Identifier: MIT
"""Evaluations: the run folder's evaluations.jsonl, the rows in runs.db, their rebuild."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.errors import DinowmError, NotFoundError
from dinowm.store import Store
from tests.support.evaluations import RUN_A, RUN_B, sample_record, seed_evaluated

COLUMNS = "run_id, checkpoint, epoch, status, horizon, planners, plan_score, oracle_ratio, " \
          "action_err, rank_true_vs_random, img_psnr, metrics_json, curves_json, goals_json"


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"select {COLUMNS} from evaluations order by run_id, checkpoint"
                            ).fetchall()
    finally:
        conn.close()


def test_a_torn_last_line_is_skipped_and_the_next_record_still_reads(tmp_path: Path) -> None:
    rundir.append_evaluation(tmp_path, sample_record("r", "epoch_0001.pth", 1))
    with open(tmp_path / rundir.EVALUATIONS, "a") as fh:
        fh.write('{"run_id": "r", "checkpoint": "epoch_00')  # a crash mid-line
    assert [r["epoch"] for r in rundir.read_evaluations(tmp_path)] == [1]
    rundir.append_evaluation(tmp_path, sample_record("r", "epoch_0002.pth", 2))
    assert [r["epoch"] for r in rundir.read_evaluations(tmp_path)] == [1, 2]
    assert rundir.read_evaluations(tmp_path / "nowhere") == []
    assert rundir.eval_dir(tmp_path, "epoch_0002.pth") == tmp_path / rundir.EVAL_DIR / "epoch_0002"


def test_rows_keep_the_first_planners_numbers_and_a_re_evaluation_replaces(
        tmp_path: Path) -> None:
    db = seed_evaluated(tmp_path)
    with Store(db) as store:
        evals = store.evaluations(RUN_A)
        assert [e["checkpoint"] for e in evals] == ["epoch_0002.pth", "epoch_0003.pth"]
        first = evals[0]
        assert first["plan_score"] == pytest.approx(0.7333)  # the second record of epoch 2
        assert first["planners"] == "cem,gd" and first["horizon"] == 5
        assert first["oracle_ratio"] == first["metrics"]["cem_oracle_ratio"]
        assert first["img_psnr"] == 17.5 and first["curves"]["horizon"] == [1, 2, 3, 4, 5]
        assert first["pictures"]["goals"][0] == "eval/epoch_0002/goal_00.png"
        stopped = store.evaluations_of([RUN_B])[RUN_B][1]
        assert stopped["status"] == "stopped" and stopped["plan_score"] is None
        assert stopped["img_psnr"] is None
        assert set(store.evaluations_of(None)) == {RUN_A, RUN_B}
        assert store.evaluated_run_ids() == [RUN_A, RUN_B]
        rollouts = store.epoch_rollouts_of([RUN_A])[RUN_A]
        assert rollouts[3] == {"val_z_visual_err_rollout": 0.525,
                               "val_z_visual_err_rollout_1framestart": 0.7,
                               "train_z_visual_err_rollout": 0.49}
        with pytest.raises(NotFoundError, match="No run 'ghost'.*dinowm runs"):
            store.add_evaluation(sample_record("ghost"))
        with pytest.raises(DinowmError, match="'checkpoint'"):
            store.add_evaluation({"run_id": RUN_A})
        store.conn.execute("delete from runs where id = ?", [RUN_B])  # cascades
        assert store.evaluations(RUN_B) == []


def test_reindex_rebuilds_the_same_rows_from_evaluations_jsonl(tmp_path: Path, cli) -> None:
    db = seed_evaluated(tmp_path)
    with open(tmp_path / "outputs" / RUN_B / rundir.EVALUATIONS, "a") as fh:
        fh.write('{"run_id": "' + RUN_B + '", "checkp')  # torn by a crash
    before = _rows(db)
    assert len(before) == 4 and json.loads(before[0][-1])[0]["episode"] == 3
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    out = cli("reindex", cwd=tmp_path)
    assert out.returncode == 0 and "from 2 run folders" in out.stdout, out.stdout + out.stderr
    assert _rows(db) == before

# SPDX-License-Identifier: MIT
"""Evaluation records as `dinowm eval` writes them (one line of evaluations.jsonl each)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.store import Store

HORIZON = (1, 2, 3, 4, 5)


def sample_record(run_id: str, checkpoint: str = "epoch_0002.pth", epoch: int = 2,
                  **overrides: Any) -> dict[str, Any]:
    """A realistic record of one checkpoint's evaluation; errors shrink as the epoch grows.

    Keyword overrides replace top-level keys; `metrics={...}` and `settings={...}` are merged
    into the defaults (a value None drops a metric).
    """
    stem = checkpoint.rsplit(".", 1)[0]
    k = 1.0 / (1 + epoch)  # later checkpoints predict and plan better
    metrics = {
        "rollout_z_visual_err": round(0.8 * k + 0.15, 4), "rollout_z_proprio_err": 0.05,
        "rollout_img_mse": 0.02, "rollout_img_psnr": 17.1, "rollout_img_ssim": 0.61,
        "true_objective": 0.30, "random_objective": 0.90, "rank_true_vs_random": 0.97,
        "cem_objective": 0.22, "cem_oracle_ratio": round(0.5 + k, 4),
        "cem_action_err": round(0.4 + k, 4), "cem_img_mse": 0.02, "cem_img_psnr": 17.5,
        "cem_img_ssim": 0.62, "cem_seconds": 3.1,
        "gd_objective": 0.35, "gd_oracle_ratio": 1.17, "gd_action_err": 1.30, "gd_img_mse": 0.03,
        "gd_img_psnr": 16.0, "gd_img_ssim": 0.55, "gd_seconds": 5.0,
        "plan_score": round(0.4 + k, 4)}
    for key, value in (overrides.pop("metrics", None) or {}).items():
        if value is None:
            metrics.pop(key, None)
        else:
            metrics[key] = value
    settings = {"episodes": 8, "horizon": len(HORIZON), "planners": ["cem", "gd"], "seed": 99,
                "alpha": 1.0, "frameskip": 5,
                "cem": {"samples": 300, "topk": 30, "iterations": 30, "var_scale": 1.0},
                "gd": {"steps": 1000, "lr": 1.0, "noise": 0.003}}
    settings.update(overrides.pop("settings", None) or {})
    goals = [{"episode": 3 + i, "start": 10, "goal": 35, "true_objective": 0.3,
              "random_objective": 0.9,
              "cem": {"objective": 0.2, "action_err": 0.7, "img_mse": 0.02},
              "gd": {"objective": 0.3, "action_err": 1.2, "img_mse": 0.03},
              "picture": f"eval/{stem}/goal_{i:02d}.png"} for i in range(2)]
    record = {
        "run_id": run_id, "checkpoint": checkpoint, "epoch": epoch, "step": 20 * epoch,
        "sha256": f"{epoch:02d}" * 32, "status": "completed",
        "created_at": 1_764_500_000.0 + epoch, "duration_s": 12.3, "device": "cpu",
        "settings": settings, "metrics": metrics,
        "curves": {"horizon": list(HORIZON),
                   "z_visual_err": [round(metrics["rollout_z_visual_err"] * h / 5, 4)
                                    for h in HORIZON],
                   "z_proprio_err": [round(0.01 * h, 4) for h in HORIZON],
                   "img_mse": [round(0.004 * h, 4) for h in HORIZON],
                   "img_psnr": [round(24.0 - 1.4 * h, 2) for h in HORIZON],
                   "img_ssim": [round(0.8 - 0.04 * h, 3) for h in HORIZON]},
        "goals": goals,
        "pictures": {"horizon_plot": f"eval/{stem}/horizon.svg",
                     "goals": [g["picture"] for g in goals]}}
    record.update(copy.deepcopy(overrides))
    return record


RUN_A, RUN_B = "20260107-090000-aaaa", "20260108-090000-bbbb"
# val loss per epoch: RUN_A's best val loss is epoch 3, its best plan score epoch 2's.
VAL_LOSS = {RUN_A: {1: 0.50, 2: 0.40, 3: 0.35}, RUN_B: {1: 0.60, 2: 0.55}}


def seed_evaluated(root: Path) -> Path:
    """A project under root (dinowm.toml, runs.db, outputs/) with two runs whose epochs and
    evaluations are in both the run folders and runs.db; returns the runs.db path.

    RUN_A: epochs 1-3, epoch_0002 evaluated twice (the second, better record wins) and
    epoch_0003; RUN_B: epochs 1-2, epoch_0001 evaluated, and epoch_0002 stopped early.
    """
    (root / "dinowm.toml").write_text("[project]\n")
    db = root / "runs.db"
    with Store(db) as store:
        for n, (run_id, losses) in enumerate(VAL_LOSS.items()):
            run_dir = root / "outputs" / run_id
            run_dir.mkdir(parents=True)
            rundir.write_spec(run_dir, {"run_id": run_id, "name": f"run-{n}",
                                        "config": {"training": {"epochs": len(losses)}}})
            store.create_run({"id": run_id, "name": f"run-{n}", "preset": "demo",
                              "status": "completed", "config_json": "{}", "config_hash": "h",
                              "run_dir": str(run_dir), "created_at": 1_767_776_400.0 + n,
                              "epochs_target": len(losses), "epoch": len(losses)})
            for epoch, val in losses.items():
                store.upsert_epoch(run_id, epoch, {
                    "train_loss": val + 0.05, "val_loss": val, "z_err_pred": val / 2,
                    "val_z_visual_err_rollout": round(val * 1.5, 4),
                    "val_z_visual_err_rollout_1framestart": round(val * 2, 4),
                    "train_z_visual_err_rollout": round(val * 1.4, 4)})
        records = [
            sample_record(RUN_A, "epoch_0002.pth", 2, metrics={"plan_score": 0.9}),
            sample_record(RUN_A, "epoch_0002.pth", 2),  # re-evaluated: this one counts
            sample_record(RUN_A, "epoch_0003.pth", 3, metrics={"plan_score": 0.95}),
            sample_record(RUN_B, "epoch_0001.pth", 1),
            sample_record(RUN_B, "epoch_0002.pth", 2, status="stopped",
                          metrics={"plan_score": None, "cem_img_psnr": None})]
        for record in records:
            rundir.append_evaluation(root / "outputs" / record["run_id"], record)
            store.add_evaluation(record)
    return db

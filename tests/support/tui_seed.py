# SPDX-License-Identifier: MIT
"""A project with fixed runs (fixed ids, times, losses, telemetry, a stall) for the TUI tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dinowm.config import load_project, resolve, to_dict
from dinowm.store import Store

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_776_400.0  # 2026-01-07 09:00 UTC
NOW = T0 + 3 * 3600.0  # the clock the tests give the app

STACKS = "\n".join(
    ["Thread 0x00007f01 (most recent call first):",
     '  File "/usr/lib/python3.11/threading.py", line 327 in wait',
     '  File "/work/dinowm/train/data.py", line 88 in __next__',
     "", "Current thread 0x00007f00 (most recent call first):"]
    + [f'  File "/work/dinowm/train/loop.py", line {100 + i} in frame_{i}' for i in range(60)])

RUNS = [  # id, name, status, overrides, epochs done, target, attempts, start offset (s)
    ("20260107-090000-aaaa", "baseline", "completed", [], 6, 6, 1, 0),
    ("20260107-100000-bbbb", "lr-high", "running",
     ["training.predictor_lr=0.001", "training.epochs=10"], 4, 10, 2, 3600),
    ("20260107-103000-cccc", "b8", "stopped", ["training.batch_size=8"], 2, 6, 1, 5400),
    ("20260107-110000-dddd", "broken", "failed", ["frameskip=3"], 0, 6, 1, 7200),
]


def seed_project(root: Path) -> Path:
    """Write dinowm.toml, runs.db and run folders under root; returns the dinowm.toml path."""
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", root / "dinowm.toml")
    project = load_project(root / "dinowm.toml")
    with Store(project.runs_db) as store:
        for k, (run_id, name, status, overrides, done, target, attempts, offset) in \
                enumerate(RUNS):
            # the target is pinned, whatever the demo preset's default becomes
            pinned = [*overrides, f"training.epochs={target}"]
            resolved = resolve(project, "demo", list(dict.fromkeys(pinned)))
            run_dir = project.outputs / run_id
            run_dir.mkdir(parents=True)
            (run_dir / "config.json").write_text(json.dumps({
                "run_id": run_id, "name": name, "preset": "demo", "overrides": overrides,
                "changed": resolved.changed(), "config": to_dict(resolved.config)}))
            (run_dir / "train.log").write_text("".join(
                f"epoch {e} done: train_loss {1 / e:.4f}\n" for e in range(1, done + 1)))
            start = T0 + offset
            running = status == "running"
            store.create_run({
                "id": run_id, "name": name, "preset": "demo", "status": status,
                "env": "synthetic_push", "config_json": json.dumps(to_dict(resolved.config)),
                "config_hash": f"hash{k}", "run_dir": str(run_dir), "created_at": start,
                "started_at": start, "ended_at": None if running else start + 600 * (done + 1),
                "updated_at": start, "epochs_target": target, "epoch": done,
                "attempts": attempts, "host": "elsewhere" if running else None,
                "phase": "train" if running else None, "exit_reason":
                    "ConfigError: frameskip" if status == "failed" else None})
            for e in range(1, done + 1):
                store.upsert_epoch(run_id, e, {
                    "train_loss": round(1.0 / e + k * 0.1, 4),
                    "val_loss": round(1.1 / e + k * 0.1, 4),
                    "z_err_pred": round(0.5 / e + k * 0.05, 4), "duration_s": 600.0,
                    "samples_per_s": 40.0 + k, "max_gpu_temp_c": 70.0 + e + k,
                    "mean_power_w": 200.0 + 10 * k, "attempt": 1, "started_at": start})
            samples = 120 if done else 0
            store.add_telemetry([{
                "run_id": run_id, "t": (NOW - samples + s) if running else start + s * 30,
                "gpu": 0, "n": 1, "temp_c": 60.0 + s % 25, "power_w": 150.0 + s % 40,
                "power_limit_w": 300.0, "util_pct": 95.0, "mem_used_mib": 8192.0,
                "mem_total_mib": 81559.0, "throttle": 0x20 if s % 50 == 49 else 0}
                for s in range(samples)])
        run_id = RUNS[1][0]
        store.add_incident(run_id, "stall", "stall: no heartbeat for 95 s; blocked in "
                           "loop.py:100 frame_0", {
                               "summary": "blocked (no CPU for 1.0 s) in loop.py:100 frame_0",
                               "verdict": {"stalled": True, "phase": "train", "age_s": 95.0,
                                           "limit_s": 60.0},
                               "stuck_frame": {"text": "loop.py:100 frame_0"},
                               "stacks": {"text": STACKS}, "zombies": [],
                               "process": {"activity": "blocked", "state_name": "sleeping",
                                           "cpu_percent": 0.0, "threads": []},
                               "log_tail": ["epoch 2 done", "step 120"]},
                           t=T0 + 5000, attempt=1, epoch=2)
        store.add_incident(run_id, "resume", "resuming (attempt 2) after 10 s: stall",
                           {"delay_s": 10}, t=T0 + 5010, attempt=1)
        store.transaction(lambda db: db["notes"].insert_all([
            {"run_id": RUNS[0][0], "t": T0 + 700, "text": "baseline looks fine",
             "source": "user"},
            {"run_id": run_id, "t": T0 + 3700, "text": "lr 1e-3 to see if it diverges",
             "source": "user"}]))
    return project.config_path

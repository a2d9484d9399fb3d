# SPDX-License-Identifier: MIT
"""A fixed record for the export tests: two runs with every kind of incident, built via Store.

Run A (completed, 5 epochs) went through an OOM, a thermal pause, a freeze, a SIGKILL, a lost
supervisor, a user resume and a skipped checkpoint. Run B is still running and its run folder
is gone. Ids, times and values are fixed, so the export is the same on every machine (in UTC).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dinowm.config import load_project, resolve, to_dict, with_values
from dinowm.store import Store

REPO = Path(__file__).resolve().parents[2]
RUN_A, RUN_B = "20260107-093348-ab12", "20260113-101500-cd34"
T0 = 1767778428.0  # 2026-01-07 09:33:48 UTC
EPOCH_S = 1500.0
NOW = T0 + 8 * 86400.0  # "now" of the export: while run B is running


def _resolved(root: Path, preset: str, overrides: list[str]) -> Any:
    if not (root / "dinowm.toml").exists():
        (root / "dinowm.toml").write_text((REPO / "dinowm" / "dinowm.toml").read_text())
    return resolve(load_project(root / "dinowm.toml"), preset, overrides)


def _create(store: Store, root: Path, run_id: str, name: str, preset: str,
            overrides: list[str], created: float, folder: bool) -> dict[str, Any]:
    resolved = _resolved(root, preset, overrides)
    cfg = resolved.config
    if run_id == RUN_A:  # as it is after the OOM policy and `dinowm resume ... training.epochs=5`
        cfg = with_values(cfg, training__epochs=5, training__grad_accum=2)
    run_dir = root / "outputs" / run_id
    command = f"dinowm run --preset {preset} " + " ".join(overrides)
    if folder:
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "samples").mkdir()
        (run_dir / "config.json").write_text(json.dumps({
            "run_id": run_id, "name": name, "preset": preset, "overrides": overrides,
            "changed": resolved.changed(), "config": to_dict(cfg), "config_hash": "3f2a9c01be77",
            "command": command, "created_at": created,
            "resume_overrides": ["training.epochs=5"] if run_id == RUN_A else []}, indent=1))
    store.create_run({"id": run_id, "name": name, "preset": preset, "env": cfg.env,
                      "config_json": json.dumps(to_dict(cfg)), "config_hash": "3f2a9c01be77",
                      "overrides_json": json.dumps(overrides), "command": command,
                      "cwd": str(root), "run_dir": str(run_dir), "created_at": created,
                      "epochs_target": cfg.training.epochs, "batch_size": cfg.training.batch_size,
                      "grad_accum": cfg.training.grad_accum, "micro_batch": cfg.micro_batch,
                      "host": "tsp-jw", "encoder_label": "DINOv2 ViT-S/14 (pretrained)",
                      "changed_json": json.dumps(resolved.changed()),
                      "resume_overrides_json": json.dumps(
                          ["training.epochs=5"] if run_id == RUN_A else [])})
    store.set_hardware(run_id, {
        "collected_at": created, "hostname": "tsp-jw",
        "platform": "Linux-6.8.0-51-generic-x86_64",
        "python": "3.10.14", "torch": "2.4.1", "nvml": "ok", "driver": "570.195.03",
        "cuda": "12.8", "gpu_name": "NVIDIA RTX A4000", "gpu_count": 1, "gpu_vram_mib": 16376,
        "gpus": [{"index": 0, "name": "NVIDIA RTX A4000", "uuid": "GPU-1", "vram_mib": 16376}],
        "cpu_model": "Intel(R) Core(TM) i9-14900K", "cpu_cores": 24, "cpu_threads": 32,
        "cpu_sockets": 1, "cpu_max_mhz": 6000.0, "cpu_min_mhz": 800.0,
        "ram_total_mib": 192512, "ram_available_mib": 173056, "swap_total_mib": 2048})
    return {"run_dir": run_dir, "cfg": cfg}


def _note(store: Store, run_id: str, t: float, text: str, source: str = "user") -> None:
    note_id = store.add_note(run_id, text, source)
    store.transaction(lambda db: db["notes"].update(note_id, {"t": t}))


def add_epoch(store: Store, run_id: str, epoch: int, attempt: int, start: float,
              losses: tuple[float, float, float], batch: int = 32) -> None:
    """One epoch row of the run with these (train, val, z) losses and fixed measurements."""
    train, val, z = losses
    store.upsert_epoch(run_id, epoch, {
        "attempt": attempt, "train_loss": train, "val_loss": val, "z_err_pred": z,
        "val_z_visual_err_pred": z, "started_at": start, "ended_at": start + EPOCH_S,
        "duration_s": EPOCH_S, "steps": 515, "batch_size": batch, "samples_per_s": 11.2,
        "peak_gpu_mem_mib": 9123.4, "max_gpu_temp_c": 70.0 + epoch, "mean_power_w": 95.5,
        "mean_gpu_util": 97.0})


STACKS = """Thread 0x00007f3a1c7fe640 (most recent call first):
  File "/usr/lib/python3.10/threading.py", line 324 in wait
  File "/opt/conda/lib/python3.10/site-packages/torch/utils/data/_utils/pin_memory.py", line 52 in do_one_step

Current thread 0x00007f3a9d4b1740 (most recent call first):
  File "/opt/conda/lib/python3.10/site-packages/torch/cuda/streams.py", line 224 in synchronize
  File "/home/jw/dino_wm/dinowm/train/loop.py", line 118 in train
  File "/home/jw/dino_wm/dinowm/train/__main__.py", line 47 in main"""


def _stall_details(t: float) -> dict[str, Any]:
    return {
        "pid": 48213, "summary": "blocked (no CPU for 1.0 s) in streams.py:224 synchronize "
        "(from loop.py:118 train); 1 zombie [python] pid 48240 (child of pid 48213 [python])",
        "process": {"state": "S", "state_name": "sleeping", "activity": "blocked",
                    "cpu_used_s": 0.0, "window_s": 1.0, "cpu_percent": 0.0,
                    "threads": [{"tid": 48213, "name": "python", "state": "S",
                                 "wchan": "futex_wait_queue", "cpu_used_s": 0.0}] * 3},
        "stacks": {"text": STACKS}, "stacks_note": None,
        "stuck_frame": {"text": "streams.py:224 synchronize (from loop.py:118 train)"},
        "zombies": [{"pid": 48240, "comm": "python", "ppid": 48213, "parent_comm": "python"}],
        "log_tail": ["2026-01-07 10:35:10 epoch 3 step 200/515 loss 0.2311",
                     "2026-01-07 10:35:40 epoch 3 step 230/515 loss 0.2297"],
        "gpu": {"available": True, "gpus": [{"gpu": 0, "temp_c": 48.0, "power_w": 21.0,
                                             "util_pct": 0.0, "mem_used_mib": 8900.0,
                                             "throttle_names": []}]},
        "verdict": {"stalled": True, "phase": "train", "age_s": 95.2, "limit_s": 60.0},
        "kill": {"pgid": 48213, "signals": ["SIGTERM", "SIGCONT", "SIGKILL"], "exited": True,
                 "killed": True, "returncode": -9, "seconds": 10.2, "survivors": []},
        "collected_at": t}


def build(root: Path) -> Path:
    """runs.db and run folders under root; returns the path of runs.db."""
    db = root / "runs.db"
    with Store(db) as store:
        a = _create(store, root, RUN_A, "lively-violet-5", "franka_f5_h3",
                    ["data.path=/data/franka_cube_stack_ds", "training.epochs=4"], T0, True)
        _note(store, RUN_A, T0 + 1, "Erstes Training gestartet")
        inc = store.add_incident
        inc(RUN_A, "oom", "CUDA out of memory. Tried to allocate 442.00 MiB. GPU 0 has a total "
            "capacity of 15.72 GiB", {"batch_size": 32, "grad_accum": 1,
                                      "peak_gpu_mem_mib": 15872.5,
                                      "traceback": "Traceback (most recent call last):\n"
                                      "  File \"loop.py\", line 96, in train\n"
                                      "torch.OutOfMemoryError: CUDA out of memory."},
            attempt=1, epoch=1, step=12, t=T0 + 60)
        inc(RUN_A, "oom_policy", "micro-batch 32 → 16 (grad_accum 1 → 2, batch 32 kept)",
            {"batch_size": 32, "micro_batch_before": 32, "micro_batch_after": 16}, t=T0 + 61)
        inc(RUN_A, "resume", "resuming (attempt 2) after 10 s: CUDA out of memory",
            {"delay_s": 10.0, "after": "oom"}, attempt=1, t=T0 + 62)
        s = T0 + 100
        add_epoch(store, RUN_A, 1, 2, s, (0.4123, 0.3561, 0.2711))
        inc(RUN_A, "thermal", "GPU at 84 °C > 82 °C for 10 s; pausing until < 75 °C",
            {"temps": [84.0], "throttle": ["sw_thermal"], "action": "pause"}, t=s + 1800)
        inc(RUN_A, "thermal", "GPU at 74 °C: resuming", {"temps": [74.0], "throttle": [],
                                                        "action": "resume"}, t=s + 1900)
        _note(store, RUN_A, s + 2000, "Lüfterkurve JW aktiv, Power Limit 100 W")
        add_epoch(store, RUN_A, 2, 2, s + EPOCH_S, (0.2874, 0.2650, 0.2015))
        t = s + 2 * EPOCH_S + 700
        inc(RUN_A, "stall", "stall: no progress for 95 s in phase 'train' (limit 60 s); blocked",
            _stall_details(t), attempt=2, epoch=3, step=1260, t=t)
        inc(RUN_A, "resume", "resuming (attempt 3) after 10 s: stall: no progress for 95 s",
            {"delay_s": 10.0, "after": "stall"}, attempt=2, t=t + 12)
        _note(store, RUN_A, t + 60, "Freeze bei Epoch 3, GPU nur 48 °C | kein OOM")
        s = t + 100
        add_epoch(store, RUN_A, 3, 3, s, (0.2311, 0.2208, 0.1702))
        t = s + EPOCH_S + 300
        inc(RUN_A, "crash", "trainer killed by SIGKILL (the host OOM killer or a user; see "
            "`dmesg | grep -i oom`)", {"exit_code": -9, "log_tail": [
                "2026-01-07 11:07:51 epoch 4 step 88/515 loss 0.2102"]},
            attempt=3, step=1633, t=t)
        inc(RUN_A, "resume", "resuming (attempt 4) after 20 s: trainer killed by SIGKILL",
            {"delay_s": 20.0, "after": "signal"}, attempt=3, t=t + 1)
        s = t + 60
        add_epoch(store, RUN_A, 4, 4, s, (0.2040, 0.1987, 0.1533))
        t = s + EPOCH_S + 30
        inc(RUN_A, "lost", "supervisor (pid 48100) is gone", {"log_tail": [
            "2026-01-07 11:34:05 run 20260107-093348-ab12 attempt 4: checkpoint epoch 4"],
            "orphan_trainer": False}, attempt=4, epoch=4, t=t)
        inc(RUN_A, "resume", "resumed by the user with training.epochs=5",
            {"overrides": ["training.epochs=5"]}, attempt=4, t=t + 3600)
        inc(RUN_A, "checkpoint_skipped", "epoch_0004.pth unusable, fell back: sha256 mismatch",
            {}, attempt=5, t=t + 3610)
        s = t + 3700
        add_epoch(store, RUN_A, 5, 5, s, (0.1894, 0.1901, 0.1466))
        end = s + EPOCH_S + 20
        for epoch in (4, 5):
            store.add_checkpoint(RUN_A, {"path": f"{a['run_dir']}/checkpoints/"
                                         f"epoch_{epoch:04d}.pth", "kind": "epoch",
                                         "epoch": epoch, "step": 515 * epoch,
                                         "sha256": f"{epoch}" * 64, "size": 301_989_888,
                                         "t": s + EPOCH_S if epoch == 5 else s - 100})
        (a["run_dir"] / "samples" / "epoch_0005.png").write_bytes(b"\x89PNG\r\n")
        store.ingest(RUN_A, [_start(T0 + 90, 2, 1, 32, 2),
                             {"seq": 3, "t": T0 + 91, "type": "heartbeat", "step": 1,
                              "loss": 0.9},
                             _start(s - 10, 5, 5, 32, 2),
                             {"seq": 90, "t": s + 10, "type": "heartbeat", "step": 2061,
                              "loss": 0.2}])
        _note(store, RUN_A, end + 60, "5 Epochen fertig; nächster Run mit predictor_lr 3e-4",
              source="tui")
        store.update_run(RUN_A, status="completed", exit_reason="completed", started_at=T0 + 2,
                         ended_at=end, epoch=5, step=2575, attempts=5, epochs_target=5,
                         batches_per_epoch=515, micro_batch=16, grad_accum=2,
                         wandb_id="mhlk8hxd", wandb_url="https://wandb.ai/jacob-weyer-rwth-"
                         "aachen-university/dino_wm/runs/mhlk8hxd", eta_s=0.0)
        _build_b(store, root)
    return db


def _build_b(store: Store, root: Path) -> None:
    t0 = T0 + 6 * 86400 + 2352.0  # 2026-01-13 10:12:48
    _create(store, root, RUN_B, "franka_f5_h3_b8-1", "franka_f5_h3_b8",
            ["data.path=/data/franka_cube_stack_ds", "training.predictor_lr=0.0003"], t0, False)
    add_epoch(store, RUN_B, 1, 1, t0 + 120, (0.3977, 0.3402, 0.2650))
    add_epoch(store, RUN_B, 2, 1, t0 + 120 + EPOCH_S, (0.2790, 0.2581, 0.1980))
    store.add_incident(RUN_B, "thermal", "GPU at 83 °C > 82 °C for 10 s; pausing until < 75 °C",
                       {"temps": [83.0], "throttle": [], "action": "pause"}, t=t0 + 2000)
    _note(store, RUN_B, t0 + 10, "gleiche Daten, predictor_lr 3e-4")
    store.update_run(RUN_B, status="running", started_at=t0 + 5, epoch=2, step=1100,
                     attempts=1, batches_per_epoch=515, phase="train", last_loss=0.2554,
                     samples_per_s=11.9, eta_s=98 * EPOCH_S + 900)


def _start(t: float, seq: int, attempt: int, batch: int, accum: int) -> dict[str, Any]:
    return {"seq": seq, "t": t, "type": "start", "attempt": attempt, "epoch": 1, "step": 0,
            "batches_per_epoch": 515, "batch_size": batch, "grad_accum": accum,
            "micro_batch": batch // accum, "train_samples": 16480, "val_samples": 1810,
            "params": {"encoder": 22056576, "predictor": 22431480, "decoder": 11024899,
                       "action_encoder": 460, "proprio_encoder": 40,
                       "trainable_total": 33456879},
            "encoder_label": "DINOv2 ViT-S/14 (pretrained)",
            "dataset": {"path": "/data/franka_cube_stack_ds", "layout": "franka",
                        "episodes": 20, "train_episodes": list(range(18)),
                        "val_episodes": [18, 19], "train_slices": 16480, "val_slices": 1810,
                        "state_dim": 22, "action_dim": 9, "sample_action_dim": 45,
                        "proprio_dim": 3, "image_size": [256, 256], "skipped_episodes": [],
                        "lengths": {"min": 901, "mean": 925.4, "max": 935}, "warnings": []}}

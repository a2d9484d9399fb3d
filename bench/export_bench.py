# SPDX-License-Identifier: MIT
"""export-log benchmark: `dinowm export-log all.md --all` over 1,000 runs of 100 epochs each.

Builds a project with runs.db (runs, hardware, 100 epochs, a few incidents, notes and
checkpoints per run) and a run folder per run (config.json, events.jsonl with a start event),
then times the real command in a subprocess: a first export (new file) and a re-export into the
same file (every block rewritten in place). Target: under 3 s.

    .venv/bin/python bench/export_bench.py [--runs 1000] [--epochs 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from dinowm.config import load_project, resolve, to_dict
from dinowm.store import Store

REPO = Path(__file__).resolve().parents[1]
T0 = 1767778428.0
# The per-epoch metrics a real run records (41 of them, about 2 KB of JSON per epoch).
METRICS = [f"{split}_{name}" for split in ("train", "val") for name in (
    "decoder_recon_loss_pred", "decoder_recon_loss_reconstructed", "img_l1_pred",
    "img_l1_reconstructed", "img_l2_pred", "img_l2_reconstructed", "img_mse_pred",
    "img_mse_reconstructed", "img_psnr_pred", "img_psnr_reconstructed", "img_ssim_pred",
    "img_ssim_reconstructed", "z_loss", "z_proprio_err_full", "z_proprio_err_pred",
    "z_proprio_loss", "z_visual_err_full", "z_visual_err_pred", "z_visual_loss",
    "z_visual_err_rollout")]
HEARTBEATS = "".join(json.dumps({"seq": 3 + k, "t": T0 + k, "type": "heartbeat", "epoch": 1,
                                 "batch": k, "batches": 515, "step": k, "loss": 0.2345678901,
                                 "step_s": 0.0961234, "samples_per_s": 332.9012345,
                                 "eta_s": 4950.123456}) + "\n" for k in range(1000))
VARIANTS = (["training.batch_size=32"], ["training.batch_size=16"],
            ["training.predictor_lr=0.0003"], ["frameskip=3", "num_hist=2"])


def _rows(project: Any, n_runs: int, n_epochs: int, root: Path) -> dict[str, list[dict]]:
    """Rows of every table, and the run folders written on the way."""
    resolved = [resolve(project, "franka_f5_h3", ["data.path=/data/franka", *v])
                for v in VARIANTS]
    out: dict[str, list[dict]] = {k: [] for k in ("runs", "hardware", "epochs", "incidents",
                                                  "notes", "checkpoints")}
    for i in range(n_runs):
        res = resolved[i % len(resolved)]
        cfg, run_id = res.config, f"2026{i:06d}-000000-{i:04x}"
        created = T0 + i * 86400.0
        run_dir = root / "outputs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps({
            "run_id": run_id, "changed": res.changed(), "config": to_dict(cfg)}))
        start = json.dumps({
            "seq": 2, "t": created, "type": "start", "params": {
                "encoder": 22056576, "predictor": 22431480, "decoder": 11024899,
                "action_encoder": 460, "proprio_encoder": 40, "trainable_total": 33456879},
            "dataset": {"episodes": 20, "train_episodes": list(range(18)),
                        "val_episodes": [18, 19], "train_slices": 16480, "val_slices": 1810,
                        "state_dim": 22, "action_dim": 9, "sample_action_dim": 45,
                        "proprio_dim": 3, "image_size": [256, 256],
                        "lengths": {"min": 901, "mean": 925.4, "max": 935}}})
        # A real run writes a heartbeat per step (megabytes); enough here that the start event
        # is not near the end, as in a long run.
        (run_dir / "events.jsonl").write_text(start + "\n" + HEARTBEATS)
        end = created + 60 + n_epochs * 1500.0
        out["runs"].append({
            "id": run_id, "name": f"run-{i}", "preset": "franka_f5_h3", "status": "completed",
            "env": cfg.env, "config_json": json.dumps(to_dict(cfg)), "config_hash": f"{i:012x}",
            "command": "dinowm run --preset franka_f5_h3 " + " ".join(res.overrides),
            "cwd": str(root), "run_dir": str(run_dir), "created_at": created,
            "started_at": created + 1, "ended_at": end, "updated_at": end,
            "epochs_target": n_epochs, "epoch": n_epochs, "step": 515 * n_epochs,
            "batches_per_epoch": 515, "batch_size": cfg.training.batch_size, "attempts": 2,
            "micro_batch": cfg.micro_batch, "grad_accum": cfg.training.grad_accum,
            "encoder_label": "DINOv2 ViT-S/14 (pretrained)", "exit_reason": "completed"})
        out["hardware"].append({
            "run_id": run_id, "gpu_name": "NVIDIA RTX A4000", "gpu_count": 1,
            "gpu_vram_mib": 16376, "driver": "570.195.03", "cuda": "12.8", "nvml": "ok",
            "cpu_model": "Intel Core i9-14900K", "cpu_cores": 24, "cpu_threads": 32,
            "cpu_sockets": 1, "ram_total_mib": 192512, "ram_available_mib": 173056,
            "swap_total_mib": 2048, "gpus_json": "[]"})
        for e in range(1, n_epochs + 1):
            s = created + 60 + (e - 1) * 1500.0
            out["epochs"].append({
                "run_id": run_id, "epoch": e, "attempt": 1 if e < 40 else 2,
                "train_loss": 0.5 / e ** 0.5, "val_loss": 0.45 / e ** 0.5,
                "z_err_pred": 0.3 / e ** 0.5, "metrics_json": json.dumps(
                    {"samples_path": f"{run_dir}/samples/epoch_{e:04d}.png",
                     **{name: 0.123456789012345 * (k + 1) / e for k, name in
                        enumerate(METRICS)}}), "started_at": s,
                "ended_at": s + 1500, "duration_s": 1500.0, "steps": 515, "batch_size": 32,
                "samples_per_s": 11.0, "peak_gpu_mem_mib": 9000.0, "max_gpu_temp_c": 70.0,
                "mean_power_w": 95.0, "mean_gpu_util": 97.0})
        for k, (kind, summary, details) in enumerate((
                ("oom", "CUDA out of memory", {"batch_size": 32, "grad_accum": 1,
                                               "peak_gpu_mem_mib": 15800.0}),
                ("resume", "resuming (attempt 2) after 10 s: CUDA out of memory",
                 {"delay_s": 10.0}),
                ("thermal", "GPU at 84 °C > 82 °C for 10 s; pausing until < 75 °C",
                 {"temps": [84.0], "throttle": [], "action": "pause"}))):
            out["incidents"].append({"run_id": run_id, "t": created + 60 + 1500 * 39 + k,
                                     "kind": kind, "summary": summary, "attempt": 1,
                                     "details_json": json.dumps(details)})
        for k in range(3):
            out["notes"].append({"run_id": run_id, "t": created + 100 + 20000 * k,
                                 "text": f"note {k} of run {i}", "source": "user"})
        out["checkpoints"].append({"run_id": run_id, "path": f"{run_dir}/checkpoints/"
                                   f"epoch_{n_epochs:04d}.pth", "kind": "epoch",
                                   "epoch": n_epochs, "step": 515 * n_epochs, "size": 3 << 28,
                                   "sha256": "ab" * 32, "t": end})
    return out


def build(root: Path, n_runs: int, n_epochs: int) -> float:
    """The project under root; returns the seconds it took."""
    start = time.perf_counter()
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", root / "dinowm.toml")
    rows = _rows(load_project(root / "dinowm.toml"), n_runs, n_epochs, root)
    with Store(root / "runs.db") as store:

        def body(db: sqlite_utils.Database) -> None:
            for table, table_rows in rows.items():
                db[table].insert_all(table_rows, batch_size=2000)

        store.transaction(body)
        store.checkpoint_wal()
    return time.perf_counter() - start


def time_cli(root: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `dinowm` command in a fresh interpreter (CPU: all processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dinowm", *args], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"dinowm {' '.join(args)} failed: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "export.json")
    args = parser.parse_args()
    load = os.getloadavg()  # other work on the machine makes the wall times longer
    with tempfile.TemporaryDirectory(prefix="dinowm-export-bench-") as tmp:
        root = Path(tmp)
        build_s = build(root, args.runs, args.epochs)
        first, again = [], []
        for rep in range(args.reps):  # a fresh folder each time: deleting files is slow here
            (root / f"log{rep}").mkdir()
            first.append(time_cli(root, ["export-log", f"log{rep}/all.md", "--all"]))
            again.append(time_cli(root, ["export-log", f"log{rep}/all.md", "--all"]))
        baseline, _ = time_cli(root, ["--version"])
        md = root / "log0" / "all.md"
        result = {
            "what": f"`dinowm export-log all.md --all`: {args.runs} runs x {args.epochs} epochs "
                    f"(41 metrics, 3 incidents, 3 notes, 1,000 heartbeats each; runs.db "
                    f"{(root / 'runs.db').stat().st_size / 2**20:.0f} MiB), wall seconds of the "
                    f"command in a fresh interpreter, median (and best) of {args.reps}; cpu_s: "
                    f"user + sys of all its processes; other work on the machine shows in "
                    f"interpreter_start_s (0.33 s when idle)",
            "export_new_file_s": round(statistics.median(w for w, _ in first), 3),
            "reexport_same_file_s": round(statistics.median(w for w, _ in again), 3),
            "best_s": {"new_file": round(min(w for w, _ in first), 3),
                       "same_file": round(min(w for w, _ in again), 3)},
            "cpu_s": {"new_file": round(statistics.median(c for _, c in first), 3),
                      "same_file": round(statistics.median(c for _, c in again), 3)},
            "all_wall_s": {"new_file": [round(w, 3) for w, _ in first],
                           "same_file": [round(w, 3) for w, _ in again]},
            "interpreter_start_s": round(baseline, 3), "target_s": 3.0,
            "markdown_mib": round(md.stat().st_size / 2**20, 2),
            "markdown_lines": md.read_text().count("\n"),
            "svg_files": len(list(md.parent.glob("all-*-loss.svg"))),
            "build_s": round(build_s, 1), "python": platform.python_version(),
            "cpu": _cpu_model(), "cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

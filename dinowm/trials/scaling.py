# SPDX-License-Identifier: MIT
"""`dinowm bench --gpus N`: the real trainer on one rank and on N (torchrun, DDP), the same
global batch, each a short run in a throwaway run folder."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.config import Project, Resolved, resolve, to_dict, with_values
from dinowm.events import read_events
from dinowm.schema import RunConfig
from dinowm.supervise.launch import trainer_command
from dinowm.trials import last_error, run_tool
from dinowm.trials.bench import bench_data


def scaling(
    project: Project,
    preset: str | None,
    overrides: list[str],
    ranks: int,
    steps: int,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Samples/s of the real trainer on one rank and on `ranks` (torchrun, DDP), the same
    global batch; the second epoch of each is measured (the first warms up)."""
    resolved = resolve(project, preset, overrides)
    cfg = resolved.config
    data = bench_data(project, cfg)
    extra = _random_encoder(project, cfg)
    rows = []
    for n in (1, ranks):
        trial = with_values(
            cfg,
            data__path=str(data),
            data__synthetic=False,
            training__epochs=2,
            training__max_steps_per_epoch=steps,
            training__num_reconstruct_samples=0,
            training__rollouts=0,
            dist__nproc_per_node=n,
            **extra,
        )
        row = _train(project, resolved, trial, n)
        rows.append(row)
        if report:
            report(row)
    one, many = (r.get("samples_per_s") for r in rows)
    return {
        "preset": resolved.preset,
        "overrides": overrides,
        "data": str(data),
        "steps": steps,
        "rows": rows,
        "batch_size": cfg.training.batch_size,
        "efficiency": many / (ranks * one) if one and many else None,
    }


def _random_encoder(project: Project, cfg: RunConfig) -> dict[str, Any]:
    """The DINOv2 encoder without its weights file: randomly initialised weights, written once
    beside the bench data, as the key that points at them."""
    if cfg.model.encoder != "dinov2_vits14" or cfg.model.encoder_weights:
        return {}
    weights = project.outputs / ".bench_data" / "dinov2_vits14_random.pth"
    if not weights.exists():
        run_tool("random_encoder", path=str(weights), img_size=cfg.model.encoder_img_size)
    return {"model__encoder_weights": str(weights)}


def _train(project: Project, resolved: Resolved, trial: RunConfig, n: int) -> dict[str, Any]:
    """One short training on `n` ranks in a throwaway run folder: its last epoch's speed."""
    run_dir = project.outputs / ".bench_runs" / f"{n}-ranks-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True)
    rundir.write_spec(
        run_dir,
        {
            "run_id": run_dir.name,
            "name": "bench",
            "preset": resolved.preset,
            "config": to_dict(trial),
        },
    )
    try:
        proc = subprocess.run(
            [*trainer_command(trial), "--run-dir", str(run_dir)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=1800,
        )
        return _speed(proc, run_dir, trial, n)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _speed(
    proc: subprocess.CompletedProcess[str], run_dir: Path, trial: RunConfig, n: int
) -> dict[str, Any]:
    """The row of a finished training: its last `epoch` event's speed and memory, or its error."""
    events, _ = read_events(run_dir / rundir.EVENTS, 0)
    last = [e for e in events if e["type"] == "epoch"][-1:]
    row: dict[str, Any] = {
        "ranks": n,
        "status": "ok" if proc.returncode == 0 and last else "error",
    }
    if last:
        e = last[0]
        row.update(
            samples_per_s=e["samples_per_s"],
            steps=e["steps"],
            s_per_step=trial.training.batch_size / e["samples_per_s"],
            peak_gpu_mem_mib=e.get("peak_gpu_mem_mib"),
        )
    else:
        row["error"] = last_error(proc, "no output")[:300]
    return row

"""`dinowm bench` and `dinowm probe`: trials in subprocesses, ratios measured side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from dinowm.config import Project, resolve, to_dict
from dinowm.errors import DinowmError
from dinowm.schema import RunConfig

BENCH_EPISODES, BENCH_LENGTH = 8, 120


def bench_data(project: Project, cfg: RunConfig) -> Path:
    """The preset's dataset when it exists, else a synthetic one at the model's frame size."""
    if cfg.data.path and Path(cfg.data.path).is_dir():
        return Path(cfg.data.path)
    path = project.outputs / ".bench_data" / f"synthetic_{cfg.model.img_size}px"
    if not path.exists():
        from dinowm.train.synth import write_synthetic_dataset

        try:
            write_synthetic_dataset(path, episodes=BENCH_EPISODES, length=BENCH_LENGTH,
                                    image_size=cfg.model.img_size, seed=0)
        except DinowmError:
            if not path.exists():
                raise
    return path


def run_trial(cfg: RunConfig, data: Path, mode: str, batch: int, steps: int, warmup: int,
              timeout: float = 900.0) -> dict[str, Any]:
    """One trial in a fresh process (clean peak memory); a crash is reported, not raised."""
    spec = {"config": to_dict(cfg), "data_path": str(data), "mode": mode, "batch": batch,
            "steps": steps, "warmup": warmup}
    try:
        proc = subprocess.run([sys.executable, "-m", "dinowm.train.bench", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "batch": batch, "status": "timeout"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        oom = "out of memory" in proc.stderr.lower()
        return {"mode": mode, "batch": batch, "status": "oom" if oom else "error",
                "error": err[:300]}
    return json.loads(lines[-1])


def bench(project: Project, preset: str | None, overrides: list[str], batches: list[int],
          modes: list[str], steps: int, warmup: int,
          report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every (mode, batch) trial, plus reference/fast step-time ratios per batch."""
    resolved = resolve(project, preset, overrides)
    cfg = resolved.config
    data = bench_data(project, cfg)
    rows = []
    for batch in batches:
        for mode in modes:
            row = run_trial(cfg, data, mode, batch, steps, warmup)
            rows.append(row)
            if report:
                report(row)
    ratios = {}
    for batch in batches:
        by_mode = {r["mode"]: r for r in rows if r["batch"] == batch and r.get("status") == "ok"}
        if "fast" in by_mode and "reference" in by_mode:
            ratios[batch] = by_mode["reference"]["s_per_step"] / by_mode["fast"]["s_per_step"]
    return {"preset": resolved.preset, "overrides": overrides, "data": str(data),
            "encoder": "random weights (bench never needs the weights file)", "steps": steps,
            "warmup": warmup, "rows": rows,
            "speedup_fast_over_reference": {str(k): round(v, 3) for k, v in ratios.items()}}


def probe(project: Project, preset: str | None, overrides: list[str], gpu: dict[str, Any],
          margin: float = 0.9, steps: int = 3, max_batch: int = 1024,
          report: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Largest batch that fits this GPU: doubling, then bisection; each trial in a subprocess."""
    cfg = resolve(project, preset, overrides).config
    data = bench_data(project, cfg)
    vram = gpu["vram_mib"]
    trials: dict[int, dict[str, Any]] = {}

    def fits(batch: int) -> bool:
        row = run_trial(cfg, data, "fast", batch, steps, warmup=1)
        peak = max(row.get("train_peak_mib") or 0, row.get("val_peak_mib") or 0)
        row.update(peak_mib=peak or None, vram_mib=vram,
                   fits=row.get("status") == "ok" and peak <= margin * vram)
        trials[batch] = row
        if report:
            report(row)
        return row["fits"]

    low, high, batch = 0, None, 1
    while batch <= max_batch:
        if not fits(batch):
            high = batch
            break
        low, batch = batch, batch * 2
    while high is not None and high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return [trials[b] for b in sorted(trials)]

# SPDX-License-Identifier: MIT
"""Supervisor overhead: the tiny trainer alone vs the same trainer under `dinowm run`.

Both modes run the same configuration, interleaved `--reps` times in one invocation (the
machine is noisy, so only ratios measured side by side mean anything). Speed is the training
samples/s each epoch event reports (start-up excluded). Writes bench/results/supervisor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dinowm.config import load_project, resolve, to_dict  # noqa: E402
from tests.support.trainer import TINY  # noqa: E402

OVERRIDES = [*TINY, "training.epochs=3", "training.max_steps_per_epoch=40",
             "data.synth_episodes=8", "training.num_reconstruct_samples=0"]


def speed(run_dir: Path) -> float:
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    return statistics.mean(e["samples_per_s"] for e in events if e["type"] == "epoch")


def alone(root: Path, i: int, env: dict[str, str]) -> float:
    cfg = resolve(load_project(root / "dinowm.toml"), "demo", OVERRIDES).config
    run_dir = root / "outputs" / f"alone-{i}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"run_id": f"alone-{i}",
                                                     "config": to_dict(cfg)}))
    subprocess.run([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return speed(run_dir)


def supervised(root: Path, env: dict[str, str]) -> float:
    subprocess.run([sys.executable, "-m", "dinowm", "run", "--preset", "demo", *OVERRIDES],
                   cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    newest = max((root / "outputs").glob("2*"), key=lambda p: p.name)
    return speed(newest)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "supervisor.json")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "dinowm.toml").write_text((REPO / "dinowm.toml").read_text())
        a, s = [], []
        for i in range(args.reps):
            a.append(alone(root, i, env))
            s.append(supervised(root, env))
            print(f"rep {i}: alone {a[-1]:.1f} samples/s, supervised {s[-1]:.1f} samples/s",
                  flush=True)
    ratio = statistics.median(s) / statistics.median(a)
    result = {"what": "training samples/s of the tiny CPU trainer, median of reps",
              "alone": a, "supervised": s, "ratio_supervised_over_alone": round(ratio, 4),
              "reps": args.reps, "telemetry": "NVML unavailable on this machine (no GPU)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"supervised / alone = {ratio:.3f} (target >= 0.98)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

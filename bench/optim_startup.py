# SPDX-License-Identifier: MIT
"""What dinowm's optimisers (dinowm/train/optim.py) save a trainer process: CPU seconds of a
fresh process that imports torch, builds the tiny world model and its optimisers (as `dinowm
bench`'s trial does), takes `--steps` training steps through train_step and reads the
optimisers' state, with dinowm's optimisers against torch's own classes.

The two kinds alternate `--reps` times in one invocation (the machine is noisy: only the ratio
measured side by side means anything); each process reports its own CPU time (user + system,
`resource.getrusage`) and whether it imported torch._dynamo, and the final parameters' checksum,
which must be the same for both. Writes bench/results/optim_startup.json.
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
from dinowm.data.synth import write_synthetic_dataset  # noqa: E402
from tests.support.trainer import TINY  # noqa: E402

# One process: the kind of optimiser is argv[1]; torch's own classes are put in dinowm's
# place (build_optimizers reads them from dinowm.train.optim when it is called).
CHILD = """
import json, resource, sys
import torch
from dinowm.train import optim
if sys.argv[1] == "torch":
    optim.AdamW, optim.Adam = torch.optim.AdamW, torch.optim.Adam
from dinowm.perf.bench import build_trial
spec = json.loads(sys.argv[2])
trial = build_trial(spec)
batches = iter(trial.loader)
for i in range(spec["steps"]):
    trial.step(next(batches), i)
states = [opt.state_dict() for opt in trial.stepper.optimizers.values()]
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": use.ru_utime + use.ru_stime,
                  "dynamo": "torch._dynamo" in sys.modules,
                  "checksum": float(sum(p.double().sum() for p in trial.model.parameters()))}))
"""


def once(kind: str, spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "optim_startup.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_synthetic_dataset(data, episodes=4, length=30, image_size=32, seed=0)
        cfg = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo", TINY).config
        spec = {
            "config": to_dict(cfg),
            "data_path": str(data),
            "mode": "fast",
            "batch": 4,
            "steps": args.steps,
        }
        seen: dict[str, list[dict]] = {"dinowm": [], "torch": []}
        for _ in range(args.reps):
            for kind in seen:
                seen[kind].append(once(kind, spec))
    checksums = {r["checksum"] for rows in seen.values() for r in rows}
    assert len(checksums) == 1, f"the two kinds trained differently: {checksums}"
    median = {k: statistics.median(r["cpu_s"] for r in rows) for k, rows in seen.items()}
    result = {
        "reps": args.reps,
        "steps": args.steps,
        "cpu": os.cpu_count(),
        "median_cpu_s": {k: round(v, 3) for k, v in median.items()},
        "saved_cpu_s": round(median["torch"] - median["dinowm"], 3),
        "ratio_dinowm_over_torch": round(median["dinowm"] / median["torch"], 3),
        "imports_dynamo": {k: sorted({r["dynamo"] for r in rows}) for k, rows in seen.items()},
        "same_parameters": True,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'optimisers':<12}{'median CPU s':>14}{'torch._dynamo':>16}")
    for kind in seen:
        print(f"{kind:<12}{median[kind]:>14.2f}{result['imports_dynamo'][kind]!s:>16}")
    print(
        f"saved {result['saved_cpu_s']:.2f} s per process "
        f"(ratio {result['ratio_dinowm_over_torch']:.2f}); parameters identical"
    )


if __name__ == "__main__":
    main()

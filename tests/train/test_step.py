# SPDX-License-Identifier: MIT
"""One step function: the training loop, `dinowm bench`'s trial and its profile all call
dinowm.train.step.train_step (patched in a real process, each caller is seen calling it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dinowm.config import load_project, resolve, to_dict
from dinowm.data.synth import write_synthetic_dataset
from tests.support.trainer import REPO, TINY, events

# Replaces train_step by a spy that records each call and adds 1000 to the live loss it
# returns, so that a caller seen using the spy's value really took the patched function.
DRIVER = """
import json, sys
import dinowm.train.step as step
calls, real = [], step.train_step
def spy(*args, **kwargs):
    calls.append({"step": args[2], "marked": kwargs.get("mark", step.no_mark) is not step.no_mark,
                  "split": kwargs.get("split_backward", False)})
    return real(*args, **kwargs) + 1000.0
step.train_step = spy
what, arg, out = sys.argv[1:4]
if what == "loop":
    from dinowm.train.loop import train
    train(arg)
elif what == "bench":
    from dinowm.perf.bench import trial
    print(json.dumps(trial(json.loads(arg))))
else:
    from dinowm.perf.profile import profile
    profile(json.loads(arg))
open(out, "w").write(json.dumps({"calls": calls, "dynamo": "torch._dynamo" in sys.modules}))
"""


def _drive(what: str, arg: str, tmp_path: Path, dynamo: bool | None = False) -> list[dict]:
    """The calls of train_step by `what` in a fresh process; `dynamo` is whether that process
    imported torch._dynamo (dinowm's optimisers spare an eager trainer it; None: unchecked,
    where torch's FLOP counter or profiler import it)."""
    out = tmp_path / f"{what}.calls.json"
    proc = subprocess.run([sys.executable, "-c", DRIVER, what, arg, str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(out.read_text())
    assert dynamo is None or seen["dynamo"] == dynamo, f"{what}: torch._dynamo imported"
    return seen["calls"]


def _spec(tmp_path: Path, **extra: object) -> str:
    data = tmp_path / "data"
    if not data.exists():
        write_synthetic_dataset(data, episodes=4, length=30, image_size=32, seed=0)
    cfg = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo", TINY).config
    return json.dumps({"config": to_dict(cfg), "data_path": str(data), "mode": "fast",
                       "batch": 4, **extra})


def test_the_loop_trains_through_the_step_function(tiny_run, tmp_path: Path) -> None:
    run_dir = tiny_run("step", ["training.epochs=2", "training.max_steps_per_epoch=3"])
    calls = _drive("loop", str(run_dir), tmp_path)
    assert [c["step"] for c in calls] == [0, 1, 2, 3, 4, 5]
    assert not any(c["marked"] or c["split"] for c in calls)
    beats = [e for e in events(run_dir) if e["type"] == "heartbeat" and "loss" in e]
    assert len(beats) == 6 and all(e["loss"] >= 1000.0 for e in beats)  # the spy's value


def test_bench_and_its_profile_step_through_the_same_function(tmp_path: Path) -> None:
    bench = _drive("bench", _spec(tmp_path, warmup=1, steps=2), tmp_path, dynamo=None)  # FLOPs
    # the warm-up and measured steps, then one step of each kind for the FLOP count
    assert [c["step"] for c in bench][:3] == [0, 1, 2] and len(bench) >= 4
    assert not any(c["marked"] for c in bench)
    profile = _drive("profile", _spec(tmp_path, warmup=1, steps=2, profile_steps=1,
                                      out=str(tmp_path / "prof")), tmp_path, dynamo=None)
    decomposed = [c for c in profile if c["marked"]]
    assert [c["step"] for c in decomposed] == [1, 2] and all(c["split"] for c in decomposed)
    whole = [c["step"] for c in profile if not c["marked"]]
    assert whole[:4] == [0, 1, 2, 3]  # warm-up, measured steps (each also decomposed), profiled
    report = json.loads((tmp_path / "prof.json").read_text())
    assert {c["name"] for c in report["components"]} >= {"predictor_backward", "metrics"}

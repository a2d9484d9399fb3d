# SPDX-License-Identifier: MIT
"""Behaviour unchanged, bit for bit: deterministic CPU runs digested for comparison across commits.

    python bench/identity.py digest OUT.json     # run the scenarios here, write their digest
    python bench/identity.py compare A.json B.json

The scenarios go through the `dinowm` command as a user would, in a fresh project in a
temporary folder: a straight run; the same run stopped with `dinowm stop` while its fourth step
runs, then `dinowm resume`d; a run with the decoder on a schedule and gradient accumulation; a
run without a decoder; one in reference mode; and `dinowm eval` of the straight run (rollout
errors, CEM and gradient-descent plans). The digest holds, per run: every event with the fields
that depend on the clock, the process or the path removed; the sha256 of every tensor of every
checkpoint (model, optimisers, RNG states, metric sums) with the checkpoint's other values;
the sha256 of every sample and goal picture; and the evaluation records without their timings.
Two commits behave the same when their digests are equal; `compare` prints what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The tests' tiny model (tests/support/trainer.py): seconds per run on two cores.
TINY = ["model.encoder=tiny", "model.img_size=32", "model.encoder_img_size=28",
        "model.tiny_dim=16", "model.tiny_depth=1", "model.tiny_heads=2",
        "model.predictor_depth=1", "model.predictor_heads=2", "model.predictor_dim_head=8",
        "model.predictor_mlp_dim=32", "model.decoder_channels=16", "model.decoder_res_blocks=1",
        "model.decoder_res_channels=8", "data.synth_episodes=6", "data.synth_length=30",
        "data.synth_image_size=32", "data.num_workers=0", "training.batch_size=8",
        "training.num_reconstruct_samples=2", "training.rollout_horizon=2",
        "training.precision=fp32", "frameskip=2", "num_hist=2",
        "training.deterministic=true", "training.epochs=2", "training.max_steps_per_epoch=6"]

SCENARIOS: dict[str, list[str]] = {
    "straight": [],
    "stopped": [],  # stopped during step 4, then resumed
    "schedule": ["training.decoder_every=3", "training.grad_accum=2"],
    "no_decoder": ["model.decoder=off"],
    "reference": ["perf.mode=reference"],
}

# Event and record fields that depend on the clock, the process, the machine or the path.
VOLATILE = {"t", "time", "ts", "pid", "step_s", "samples_per_s", "eta_s", "duration_s",
            "started_at", "ended_at", "train_seconds", "seconds", "path", "samples_path",
            "resumed_from", "sha256", "size", "torch", "python", "device", "hostname", "host",
            "seconds_per_plan", "plan_seconds", "loader_samples_per_s", "written_at",
            "at", "created_at", "run_dir", "swept_temp_files", "peak_gpu_mem_mib", "reason",
            "run_id", "config_hash"}
VOLATILE_SUFFIXES = ("_seconds", "_s")
_PROJECT = ["<project>"]  # the temporary project's path, written as <project> in the digest


def _dinowm(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DINOWM_CONFIG": str(project / "dinowm.toml")}
    out = subprocess.run([sys.executable, "-m", "dinowm", *args], cwd=project, env=env,
                         capture_output=True, text=True, timeout=900)
    if check and out.returncode != 0:
        raise SystemExit(f"dinowm {' '.join(args)} failed ({out.returncode}):\n"
                         f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def _events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run_dir(project: Path, name: str) -> Path:
    runs = json.loads(_dinowm(project, "runs", "--json").stdout)
    (run,) = [r for r in runs if r.get("name") == name]
    return Path(run["run_dir"])


def _stopped_and_resumed(project: Path, overrides: list[str]) -> None:
    """Start detached, sleep inside step 4, `dinowm stop` meanwhile: the run stops after step
    4 exactly, with a mid-epoch checkpoint; then `dinowm resume` to the end."""
    env_fault = "global_step:4:sleep=4#1"
    os.environ["DINOWM_FAULT"] = env_fault
    try:
        _dinowm(project, "run", "--preset", "demo", "--name", "stopped", "--detach", *overrides)
    finally:
        del os.environ["DINOWM_FAULT"]
    run_dir = _run_dir(project, "stopped")
    deadline = time.monotonic() + 300
    while not any(e.get("type") == "heartbeat" and e.get("step") == 3
                  for e in _events(run_dir)):
        if time.monotonic() > deadline:
            raise SystemExit("the stopped scenario never reached step 3")
        time.sleep(0.05)
    time.sleep(1.0)  # inside step 4's sleep
    _dinowm(project, "stop", "stopped", "--wait")
    ends = [e for e in _events(run_dir) if e.get("type") == "end"]
    if not ends or ends[-1].get("status") != "stopped" or ends[-1].get("step") != 4:
        raise SystemExit(f"the stopped scenario did not stop after step 4: {ends}")
    _dinowm(project, "resume", "stopped")


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in sorted(value.items())
                if k not in VOLATILE and not k.endswith(VOLATILE_SUFFIXES)}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, float):
        return value.hex()  # exact
    if isinstance(value, str):
        return value.replace(_PROJECT[0], "<project>")
    return value


def _tensors(value: Any, prefix: str, out: dict[str, str]) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        flat = t.reshape(-1).to(torch.uint8) if t.dtype == torch.bool else t.reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        digest = hashlib.sha256(raw).hexdigest()[:24]
        out[prefix] = f"{t.dtype} {tuple(t.shape)} {digest}"
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            if str(k) not in VOLATILE:
                _tensors(value[k], f"{prefix}.{k}", out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _tensors(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = json.dumps(_scrub(value), default=str)


def _checkpoints(run_dir: Path) -> dict[str, dict[str, str]]:
    import torch

    result = {}
    for path in sorted((run_dir / "checkpoints").glob("*.pth")):
        flat: dict[str, str] = {}
        state = torch.load(path, weights_only=True, map_location="cpu")
        state.pop("config", None)  # config.json's copy: compared through the events' hash
        _tensors(state, "", flat)
        result[path.name] = flat
    return result


def _pictures(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()[:24]
            for p in sorted(run_dir.rglob("*.png"))}


def digest(out: Path) -> dict[str, Any]:
    """Run every scenario in a fresh project; write and return the digest."""
    with tempfile.TemporaryDirectory(prefix="dinowm-identity-") as tmp:
        project = Path(tmp)
        _PROJECT[0] = str(project)
        (project / "dinowm.toml").write_text((REPO / "dinowm.toml").read_text())
        for name, extra in SCENARIOS.items():
            started = time.monotonic()
            if name == "stopped":
                _stopped_and_resumed(project, TINY + extra)
            else:
                _dinowm(project, "run", "--preset", "demo", "--name", name, *TINY, *extra)
            print(f"{name}: {time.monotonic() - started:.1f} s", file=sys.stderr)
        _dinowm(project, "eval", "straight", "--episodes", "2", "--horizon", "2",
                "--cem-samples", "32", "--cem-topk", "4", "--cem-iterations", "3",
                "--planner", "cem,gd")
        result: dict[str, Any] = {"commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
            text=True).stdout.strip(), "runs": {}}
        for name in SCENARIOS:
            run_dir = _run_dir(project, name)
            evals = run_dir / "evaluations.jsonl"
            result["runs"][name] = {
                "config": _scrub(json.loads((run_dir / "config.json").read_text())),
                "events": [_scrub(e) for e in _events(run_dir)],
                "checkpoints": _checkpoints(run_dir),
                "pictures": _pictures(run_dir),
                "evaluations": [_scrub(json.loads(x)) for x in evals.read_text().splitlines()]
                if evals.exists() else [],
            }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True))
    return result


def _diff(a: Any, b: Any, where: str, found: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                found.append(f"{where}.{k}: only in {'B' if k not in a else 'A'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", found)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{where}: {len(a)} items against {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", found)
    elif a != b:
        found.append(f"{where}: {a!r} != {b!r}")


def compare(a_path: Path, b_path: Path) -> int:
    """0 when the two digests' runs are equal; else each difference, one a line."""
    a, b = (json.loads(p.read_text())["runs"] for p in (a_path, b_path))
    found: list[str] = []
    _diff(a, b, "runs", found)
    for line in found[:200]:
        print(line)
    n_tensors = sum(len(flat) for run in a.values() for flat in run["checkpoints"].values())
    n_events = sum(len(run["events"]) for run in a.values())
    print(f"{'identical' if not found else f'{len(found)} differences'}: {len(a)} runs, "
          f"{n_events} events, {n_tensors} checkpoint values")
    return 1 if found else 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "digest":
        digest(Path(sys.argv[2]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        return compare(Path(sys.argv[2]), Path(sys.argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

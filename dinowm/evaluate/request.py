"""The options of `dinowm eval` → the request the evaluation process runs (validated here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.errors import ConfigError, NotFoundError

PLANNERS = ("cem", "gd")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EvalOptions:
    """What `dinowm eval` was asked; the defaults are the public planner's (plan.yaml, cem.yaml,
    gd.yaml): goal 5 steps away, seed 99, alpha 1, CEM 300/30/30, GD 1000 steps of lr 1."""

    checkpoint: str = "latest"  # latest | epoch_N | all
    episodes: int = 8  # held-out goals (and open-loop rollouts)
    horizon: int = 5  # steps of frameskip between start and goal
    planners: tuple[str, ...] = PLANNERS
    seed: int = 99
    alpha: float = 1.0  # weight of the proprio term in the objective
    cem: dict[str, Any] = field(default_factory=lambda: {"samples": 300, "topk": 30,
                                                         "iterations": 30, "var_scale": 1.0})
    gd: dict[str, Any] = field(default_factory=lambda: {"steps": 1000, "lr": 1.0,
                                                        "noise": 0.003})
    max_batch: int = 4096  # action sequences per forward pass
    device: str = "auto"


def check(options: EvalOptions) -> None:
    """ConfigError naming the first option out of range."""
    bad = [(name, value, fix) for name, value, fix in (
        ("--episodes", options.episodes, "use 1 or more"),
        ("--horizon", options.horizon, "use 1 or more"),
        ("--cem-samples", options.cem["samples"], "use 2 or more"),
        ("--cem-iterations", options.cem["iterations"], "use 1 or more"),
        ("--gd-steps", options.gd["steps"], "use 1 or more"),
        ("--max-batch", options.max_batch, "use 1 or more"),
    ) if value < (2 if name == "--cem-samples" else 1)]
    if not 1 <= options.cem["topk"] <= options.cem["samples"]:
        bad.append(("--cem-topk", options.cem["topk"],
                    f"use 1 to --cem-samples ({options.cem['samples']})"))
    if bad:
        name, value, fix = bad[0]
        raise ConfigError(f"{name} {value} is out of range; {fix}")
    unknown = [p for p in options.planners if p not in PLANNERS]
    if unknown or not options.planners:
        raise ConfigError(f"--planner {','.join(options.planners) or '(none)'}: "
                          f"use cem, gd or both")
    if options.device not in DEVICES:
        raise ConfigError(f"--device {options.device}: use one of {', '.join(DEVICES)}")


def choose_checkpoints(run_dir: Path, which: str) -> list[str]:
    """The checkpoint files `which` names: latest (the newest committed one; an epoch file
    rather than its model_latest.pth copy), epoch_N, or all epoch files."""
    rows = rundir.committed_checkpoints(run_dir)
    epochs = sorted((r for r in rows if r["kind"] == "epoch"), key=lambda r: r["epoch"] or 0)
    have = ", ".join(f"epoch_{r['epoch']}" for r in epochs) or "none"
    if not rows:
        raise NotFoundError(f"Run folder {run_dir} has no committed checkpoint yet; train at "
                            "least one epoch, then evaluate.")
    if which == "all":
        return [Path(r["path"]).name for r in epochs] or [rundir.LATEST_CHECKPOINT]
    if which == "latest":
        latest = [r for r in rows if r["kind"] == "latest"]
        same = [r for r in epochs if latest and r["sha256"] == latest[0]["sha256"]]
        pick = same[-1] if same else (latest[0] if latest else epochs[-1])
        return [Path(pick["path"]).name]
    if which.startswith("epoch_") and which[6:].isdigit():
        found = [r for r in epochs if r["epoch"] == int(which[6:])]
        if found:
            return [Path(found[0]["path"]).name]
        raise NotFoundError(f"--checkpoint {which}: no committed checkpoint of that epoch in "
                            f"{run_dir} (kept: {have}); pick one of those, latest or all.")
    raise ConfigError(f"--checkpoint {which}: use latest, all or epoch_N (kept: {have})")


def build(run_dir: Path, options: EvalOptions) -> dict[str, Any]:
    """The evaluation process's request (JSON-able), or a one-line error."""
    check(options)
    request = asdict(options)
    request["planners"] = list(options.planners)
    request["checkpoints"] = choose_checkpoints(run_dir, request.pop("checkpoint"))
    return request

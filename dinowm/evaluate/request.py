# SPDX-License-Identifier: MIT
"""The options of `dinowm eval` → the request the evaluation process runs (validated here).

FLAGS is the one list of the options that shape an evaluation: the CLI's click options are
made from it, parse() reads them from what the TUI's prompt was given, and both faces end in
checked(), in-process.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
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
    cem: dict[str, Any] = field(
        default_factory=lambda: {"samples": 300, "topk": 30, "iterations": 30, "var_scale": 1.0}
    )
    gd: dict[str, Any] = field(default_factory=lambda: {"steps": 1000, "lr": 1.0, "noise": 0.003})
    max_batch: int = 4096  # action sequences per forward pass
    device: str = "auto"


@dataclass(frozen=True)
class Flag:
    """One option of `dinowm eval` that shapes the evaluation."""

    name: str  # '--episodes'
    short: str | None
    dest: str  # its keyword in checked()'s values
    kind: type
    default: Any
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] = ()


FLAGS = (
    Flag(
        "--checkpoint",
        "-c",
        "checkpoint",
        str,
        "latest",
        "latest, epoch_N, or all (every kept epoch checkpoint).",
        "WHICH",
    ),
    Flag(
        "--episodes",
        "-k",
        "episodes",
        int,
        8,
        "Held-out goals to plan to (and open-loop rollouts to measure).",
    ),
    Flag(
        "--horizon",
        "-H",
        "horizon",
        int,
        5,
        "Steps of frameskip from start to goal (public goal_H).",
    ),
    Flag(
        "--planner",
        None,
        "planners",
        str,
        "cem,gd",
        "cem, gd, or both (cem,gd); the first one ranks checkpoints.",
        "P[,P]",
    ),
    Flag("--seed", None, "seed", int, 99, "Goals and planners' seed."),
    Flag(
        "--alpha",
        None,
        "alpha",
        float,
        1.0,
        "Weight of the proprio term in the planning objective.",
    ),
    Flag("--cem-samples", None, "cem_samples", int, 300),
    Flag("--cem-topk", None, "cem_topk", int, 30),
    Flag("--cem-iterations", None, "cem_iterations", int, 30),
    Flag("--gd-steps", None, "gd_steps", int, 1000),
    Flag("--gd-lr", None, "gd_lr", float, 1.0),
    Flag(
        "--device", None, "device", str, "auto", "auto: the GPU when there is one.", choices=DEVICES
    ),
    Flag(
        "--stall-s",
        None,
        "stall_s",
        float,
        300.0,
        "Stop an evaluation that reports no progress for this long.",
    ),
)
_BY_NAME = {n: f for f in FLAGS for n in (f.name, f.short) if n}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation as checked: the process's request, its stall budget, and its options
    as command-line arguments (a detached `dinowm eval` gets exactly these)."""

    request: dict[str, Any]
    stall_s: float
    argv: tuple[str, ...]


def parse(args: str | Sequence[str], run_dir: Path) -> Evaluation:
    """`dinowm eval`'s options as typed ('--episodes 4 --planner cem', split like a shell, or
    a list), checked; a one-line ConfigError names the first bad one."""
    try:
        tokens = shlex.split(args) if isinstance(args, str) else list(args)
    except ValueError as exc:
        raise ConfigError(f"Options {args!r} cannot be split ({exc}); close the quote.") from None
    values: dict[str, Any] = {}
    while tokens:
        name, eq, inline = tokens.pop(0).partition("=")
        flag = _BY_NAME.get(name)
        if flag is None:
            raise ConfigError(
                f"{name}: not an option of dinowm eval; use {', '.join(f.name for f in FLAGS)}"
            )
        if not eq and not tokens:
            raise ConfigError(f"{name} needs a value, e.g. {flag.name} {flag.default}")
        text = inline if eq else tokens.pop(0)
        try:
            values[flag.dest] = flag.kind(text)
        except ValueError:
            raise ConfigError(
                f"{name} {text!r} is not a{'n' * (flag.kind is int)} "
                f"{flag.kind.__name__}; e.g. {flag.name} {flag.default}"
            ) from None
    return checked(values, run_dir)


def checked(values: Mapping[str, Any], run_dir: Path) -> Evaluation:
    """The evaluation of the parsed option values (by Flag.dest; missing: the default), or a
    one-line error: values out of range, an unknown planner or device, a missing checkpoint."""
    v = {**{f.dest: f.default for f in FLAGS}, **values}
    options = EvalOptions(
        checkpoint=v["checkpoint"],
        episodes=v["episodes"],
        horizon=v["horizon"],
        planners=tuple(p.strip() for p in v["planners"].split(",") if p.strip()),
        seed=v["seed"],
        alpha=v["alpha"],
        device=v["device"],
        cem={
            "samples": v["cem_samples"],
            "topk": v["cem_topk"],
            "iterations": v["cem_iterations"],
            "var_scale": 1.0,
        },
        gd={"steps": v["gd_steps"], "lr": v["gd_lr"], "noise": 0.003},
    )
    request = build(run_dir, options)
    argv = tuple(part for f in FLAGS for part in (f.name, str(v[f.dest])))
    return Evaluation(request, float(v["stall_s"]), argv)


def check(options: EvalOptions) -> None:
    """ConfigError naming the first option out of range."""
    bad = [
        (name, value, fix)
        for name, value, fix in (
            ("--episodes", options.episodes, "use 1 or more"),
            ("--horizon", options.horizon, "use 1 or more"),
            ("--cem-samples", options.cem["samples"], "use 2 or more"),
            ("--cem-iterations", options.cem["iterations"], "use 1 or more"),
            ("--gd-steps", options.gd["steps"], "use 1 or more"),
            ("--max-batch", options.max_batch, "use 1 or more"),
        )
        if value < (2 if name == "--cem-samples" else 1)
    ]
    if not 1 <= options.cem["topk"] <= options.cem["samples"]:
        bad.append(
            (
                "--cem-topk",
                options.cem["topk"],
                f"use 1 to --cem-samples ({options.cem['samples']})",
            )
        )
    if bad:
        name, value, fix = bad[0]
        raise ConfigError(f"{name} {value} is out of range; {fix}")
    unknown = [p for p in options.planners if p not in PLANNERS]
    if unknown or not options.planners:
        raise ConfigError(
            f"--planner {','.join(options.planners) or '(none)'}: use cem, gd or both"
        )
    if options.device not in DEVICES:
        raise ConfigError(f"--device {options.device}: use one of {', '.join(DEVICES)}")


def choose_checkpoints(run_dir: Path, which: str) -> list[str]:
    """The checkpoint files `which` names: latest (the newest committed one; an epoch file
    rather than its model_latest.pth copy), epoch_N, or all epoch files."""
    rows = rundir.committed_checkpoints(run_dir)
    epochs = sorted((r for r in rows if r["kind"] == "epoch"), key=lambda r: r["epoch"] or 0)
    have = ", ".join(f"epoch_{r['epoch']}" for r in epochs) or "none"
    if not rows:
        raise NotFoundError(
            f"Run folder {run_dir} has no committed checkpoint yet; train at "
            "least one epoch, then evaluate."
        )
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
        raise NotFoundError(
            f"--checkpoint {which}: no committed checkpoint of that epoch in "
            f"{run_dir} (kept: {have}); pick one of those, latest or all."
        )
    raise ConfigError(f"--checkpoint {which}: use latest, all or epoch_N (kept: {have})")


def build(run_dir: Path, options: EvalOptions) -> dict[str, Any]:
    """The evaluation process's request (JSON-able), or a one-line error."""
    check(options)
    request = asdict(options)
    request["planners"] = list(options.planners)
    request["checkpoints"] = choose_checkpoints(run_dir, request.pop("checkpoint"))
    return request

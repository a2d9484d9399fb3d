# SPDX-License-Identifier: MIT
"""A run's checkpoint as a model folder of the public DINO-WM planner, written by a child process
(dinowm.interop.tools) that imports the user's DINO-WM checkout."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.errors import ConfigError, NotFoundError
from dinowm.trials import run_tool

PLANNER_FILES = ("models/vit.py", "models/vqvae.py", "models/proprio.py")  # of a DINO-WM checkout


def export_for_planner(
    run: dict[str, Any],
    checkout: Path | None,
    epoch: int | None = None,
    out: Path | None = None,
    dataset_target: str | None = None,
) -> dict[str, Any]:
    """RUN's epoch checkpoint (default: the newest) as a model folder of the public DINO-WM
    planner, written by a child that imports the user's checkout: what it wrote, the plan.py
    command line that loads it (None when `out` is not an outputs/<name> folder), warnings."""
    checkout = _checked_checkout(checkout)
    source = epoch_checkpoint(Path(run["run_dir"]), run["id"], epoch)
    out = _model_folder(run, checkout, out)
    base, model_name = planner_location(out)
    result = run_tool(
        "export_dino_wm",
        checkpoint=source["path"],
        checkout=str(checkout),
        out=str(out),
        run_name=run.get("name") or run["id"],
        dataset_target=dataset_target,
        paths={"ckpt_base_path": base, "saved_folder": str(out)},
    )
    result["plan_command"] = _plan_command(checkout, base, model_name, result["epoch"])
    return result


def _checked_checkout(checkout: Path | None) -> Path:
    """--dino-wm's folder, resolved; ConfigError without one, NotFoundError when it lacks the
    model files of a DINO-WM checkout."""
    if checkout is None:
        raise ConfigError(
            "--dino-wm PATH is needed: the modules are pickled through the classes "
            "of your DINO-WM checkout so that its plan.py can unpickle them; give "
            "the checkout's folder, e.g. --dino-wm ~/dino_wm."
        )
    checkout = checkout.expanduser().resolve()
    for name in PLANNER_FILES:
        if not (checkout / name).is_file():
            raise NotFoundError(
                f"{checkout} has no {name}; --dino-wm must point at a DINO-WM "
                f"checkout (the folder holding plan.py and models/)."
            )
    return checkout


def _model_folder(run: dict[str, Any], checkout: Path, out: Path | None) -> Path:
    """--out, or the checkout's outputs/<run name> (the id when the name is no plain file
    name); ConfigError when the folder holds another run's model."""
    safe = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run.get("name") or "")
    out = (
        out.expanduser().resolve()
        if out
        else checkout / rundir.PLANNER_OUTPUTS / (run["name"] if safe else run["id"])
    )
    config = out / rundir.PLANNER_CONFIG
    if config.is_file() and f"run_id: {json.dumps(run['id'])}" not in config.read_text():
        raise ConfigError(
            f"{out} holds another model (its {rundir.PLANNER_CONFIG} is not from "
            f"run {run['id']}); choose another folder with --out DIR."
        )
    return out


def _plan_command(
    checkout: Path, base: str | None, model_name: str | None, epoch: int
) -> str | None:
    """The shell line that plans with the exported model; None when plan.py cannot find it."""
    if base is None:
        return None
    return (
        shlex.join(["cd", str(checkout)])
        + " && "
        + shlex.join(
            [
                "python",
                "plan.py",
                f"ckpt_base_path={base}",
                f"model_name={model_name}",
                f"model_epoch={epoch}",
            ]
        )
    )


def epoch_checkpoint(run_dir: Path, run_id: str, epoch: int | None) -> dict[str, Any]:
    """The committed epoch checkpoint of `epoch` (default: the newest), or NotFoundError
    listing the epochs there are."""
    rows = sorted(
        (r for r in rundir.committed_checkpoints(run_dir) if r["kind"] == "epoch"),
        key=lambda r: r["epoch"],
    )
    if not rows:
        raise NotFoundError(
            f"Run {run_id} has no committed epoch checkpoint in {run_dir}; "
            f"train at least one epoch ('dinowm resume {run_id}')."
        )
    if epoch is None:
        return rows[-1]
    for row in rows:
        if row["epoch"] == epoch:
            return row
    have = ", ".join(str(r["epoch"]) for r in rows)
    raise NotFoundError(
        f"Run {run_id} has no committed checkpoint of epoch {epoch}; available "
        f"epochs: {have} (training.keep_checkpoints keeps the newest)."
    )


def planner_location(out: Path) -> tuple[str | None, str | None]:
    """(ckpt_base_path, model_name) under which plan.py finds `out`: <base>/outputs/<name>."""
    parts = out.parts
    heads = [i for i, part in enumerate(parts[:-1]) if part == rundir.PLANNER_OUTPUTS]
    if not heads:
        return None, None
    return str(Path(*parts[: heads[-1]])), "/".join(parts[heads[-1] + 1 :])

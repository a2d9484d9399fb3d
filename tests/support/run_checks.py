# SPDX-License-Identifier: MIT
"""What a supervised run left behind, for the fault-injection tests (needs torch)."""

from __future__ import annotations

from pathlib import Path

import torch

from dinowm.train import checkpoint as ckpt
from tests.support.supervised import Project

# Deterministic training, so that an interrupted run can end bit-identical to a straight one.
DET = ["training.deterministic=true", "watchdog.heartbeat_floor_s=3"]


def epochs(project: Project, run_id: str) -> list[int]:
    """The run's epochs in runs.db, in order."""
    return [r["epoch"] for r in project.rows(
        "select epoch from epochs where run_id = ? order by epoch", run_id)]


def final_weights(run: dict) -> dict[str, torch.Tensor]:
    """The model's tensors in the run's latest checkpoint, by part and name."""
    state = torch.load(Path(run["run_dir"]) / "checkpoints" / ckpt.LATEST, weights_only=True)
    return {f"{p}.{k}": v for p, sd in state["model"].items() for k, v in sd.items()}


def all_checkpoints_verify(run: dict) -> None:
    """No temp file left behind, and every kept checkpoint loads and verifies."""
    folder = Path(run["run_dir"]) / "checkpoints"
    assert not list(folder.glob(".*.tmp")), "temp files left behind"
    for path in ckpt.candidates(folder):
        ckpt.load(path)  # raises when a kept checkpoint does not verify

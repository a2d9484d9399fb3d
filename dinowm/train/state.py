"""Where training stands, and how it crosses a restart: TrainState, restore() and save()."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dinowm.config import config_hash, to_dict
from dinowm.errors import ConfigError
from dinowm.faults import fault
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.train.build import load_model_state, model_state, rng_state, set_rng_state
from dinowm.train.model import WorldModel
from dinowm.train.normalize import Stats
from dinowm.train.runtime import Runtime

Optimizers = dict[str, torch.optim.Optimizer]


class Accum:
    """Sample-weighted running sums of an epoch's metrics (restored on a mid-epoch resume)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.weights: dict[str, int] = dict(state.get("weights", {}))
        self.steps: int = state.get("steps", 0)
        self.samples: int = state.get("samples", 0)
        self.seconds: float = state.get("seconds", 0.0)

    def add(self, out: dict[str, torch.Tensor], n: int) -> None:
        """Add the scalar outputs of a forward pass over `n` samples."""
        for key, value in out.items():
            if value.dim() == 0:
                self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
                self.weights[key] = self.weights.get(key, 0) + n
        self.samples += n

    def means(self, prefix: str) -> dict[str, float]:
        """Sample-weighted means, keys as `{prefix}_{metric}`, sorted."""
        return {f"{prefix}_{k}": self.sums[k] / self.weights[k] for k in sorted(self.sums)}

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores under "accum"."""
        return {"sums": self.sums, "weights": self.weights, "steps": self.steps,
                "samples": self.samples, "seconds": self.seconds}


@dataclass
class TrainState:
    """The counters a checkpoint carries besides weights, optimiser and RNG states."""

    epoch: int = 1  # the epoch being trained, 1-based
    step: int = 0  # optimiser steps since the run began
    samples: int = 0  # samples of this epoch already trained on (a resume skips them)
    accum: Accum = field(default_factory=Accum)  # this epoch's metric sums, steps and seconds

    def next_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch, self.samples, self.accum = self.epoch + 1, 0, Accum()


def latest_checkpoint(folder: Path, rt: Runtime) -> ckpt.Loaded | None:
    """The newest usable checkpoint (None on a fresh run); each one skipped is an incident."""
    resumed = ckpt.load_latest(folder)
    for name, reason in (resumed.skipped if resumed else []):
        rt.incident("checkpoint_skipped", f"{name} unusable, fell back: {reason}")
    return resumed


def restore(resumed: ckpt.Loaded, run_id: str, model: WorldModel,
            optimizers: Optimizers) -> TrainState:
    """Load weights, optimiser and RNG states of `resumed` and return where it stood."""
    state = resumed.state
    try:
        if state.get("run_id") != run_id:
            raise ValueError(f"it belongs to run {state.get('run_id')}")
        load_model_state(model, state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optim"][name])
            match_layouts(opt)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ConfigError(f"Checkpoint {resumed.path} does not fit this run "
                          f"({str(exc).splitlines()[0][:160]}); restore the run's "
                          f"config.json or start a new run.") from None
    set_rng_state(state["rng"])
    return TrainState(epoch=state["epoch"], step=state["step"], samples=state["samples_done"],
                      accum=Accum(state["accum"]))


def match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each loaded optimiser state tensor its parameter's memory layout.

    Fused Adam pairs a parameter with its states element by element in memory order: states
    saved with perf.channels_last on and loaded with it off (or the reverse) would mix weights.
    """
    for param, per_param in opt.state.items():
        for key, value in per_param.items():
            if (isinstance(value, torch.Tensor) and value.shape == param.shape
                    and value.stride() != param.stride()):
                per_param[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def save(rt: Runtime, cfg: RunConfig, model: WorldModel, optimizers: Optimizers, stats: Stats,
         state: TrainState, kind: str) -> None:
    """Commit everything needed to continue exactly, then announce it ("epoch" or "latest")."""
    folder = rt.run_dir / "checkpoints"
    payload = {"format": ckpt.FORMAT, "run_id": rt.run_id, "config": to_dict(cfg),
               "epoch": state.epoch, "samples_done": state.samples, "step": state.step,
               "accum": state.accum.state(), "model": model_state(model),
               "optim": {k: o.state_dict() for k, o in optimizers.items()},
               "rng": rng_state(), "stats": stats}
    # An epoch checkpoint is written after next_epoch(): it names the epoch just finished.
    meta = {"run_id": rt.run_id, "epoch": state.epoch - 1 if state.samples == 0 else state.epoch,
            "next_epoch": state.epoch, "samples_done": state.samples, "step": state.step,
            "config_hash": config_hash(cfg)}
    fault("checkpoint")
    if kind == "epoch":
        name = f"epoch_{state.epoch - 1:04d}.pth"
        manifest = ckpt.save(folder, name, payload, meta, latest=True)
        ckpt.prune(folder, cfg.training.keep_checkpoints)
    else:
        name = ckpt.LATEST
        manifest = ckpt.save(folder, name, payload, meta, latest=False)
    fault("ckpt_before_event")
    rt.checkpoint(path=str(folder / name), kind=kind, epoch=meta["epoch"], step=state.step,
                  samples_done=state.samples, sha256=manifest["sha256"], size=manifest["size"])

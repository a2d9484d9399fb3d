"""Crossing a restart: find the checkpoint to resume, restore() it, save() a new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dinowm import rundir
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


def latest_checkpoint(folder: Path, rt: Runtime) -> ckpt.Loaded | None:
    """The newest usable checkpoint (None on a fresh run); each one skipped is an incident."""
    resumed = ckpt.load_latest(folder)
    for name, reason in (resumed.skipped if resumed else []):
        rt.incident("checkpoint_skipped", f"{name} unusable, fell back: {reason}")
    return resumed


def restore(resumed: ckpt.Loaded, run_id: str, model: WorldModel,
            optimizers: Optimizers) -> None:
    """Load the weights, optimiser and RNG states of `resumed` (ConfigError if they don't fit)."""
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
         counters: dict[str, Any], kind: str) -> None:
    """Commit everything needed to continue exactly, then announce it ("epoch" or "latest").

    `counters`: TrainState.checkpoint(), the epoch to train next, samples_done, step, accum.
    """
    folder = rt.run_dir / rundir.CHECKPOINTS
    epoch, samples, step = counters["epoch"], counters["samples_done"], counters["step"]
    payload = {"format": ckpt.FORMAT, "run_id": rt.run_id, "config": to_dict(cfg), **counters,
               "model": model_state(model),
               "optim": {k: o.state_dict() for k, o in optimizers.items()},
               "rng": rng_state(), "stats": stats}
    # An epoch checkpoint is written at the start of the next epoch: it names the one finished.
    meta = {"run_id": rt.run_id, "epoch": epoch - 1 if samples == 0 else epoch,
            "next_epoch": epoch, "samples_done": samples, "step": step,
            "config_hash": config_hash(cfg)}
    fault("checkpoint")
    if kind == "epoch":
        name = f"epoch_{epoch - 1:04d}.pth"
        manifest = ckpt.save(folder, name, payload, meta, latest=True)
        ckpt.prune(folder, cfg.training.keep_checkpoints)
    else:
        name = ckpt.LATEST
        manifest = ckpt.save(folder, name, payload, meta, latest=False)
    fault("ckpt_before_event")
    rt.checkpoint(path=str(folder / name), kind=kind, epoch=meta["epoch"], step=step,
                  samples_done=samples, sha256=manifest["sha256"], size=manifest["size"])

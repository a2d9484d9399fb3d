# SPDX-License-Identifier: MIT
"""Crossing a restart: find the checkpoint to resume, restore() it, save() a new one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dinowm import rundir
from dinowm.config import config_hash, to_dict
from dinowm.data.normalize import Stats
from dinowm.errors import ConfigError
from dinowm.faults import fault
from dinowm.model.build import load_model_state, model_state
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.train.dist import Dist
from dinowm.train.runtime import Runtime
from dinowm.train.state import rank_state, rng_state, set_rng_state
from dinowm.train.step import Optimizers


def latest_checkpoint(folder: Path, rt: Runtime) -> ckpt.Loaded | None:
    """The newest usable checkpoint (None on a fresh run); each one skipped is an incident."""
    resumed = ckpt.load_latest(folder)
    for name, reason in resumed.skipped if resumed else []:
        rt.incident("checkpoint_skipped", f"{name} unusable, fell back: {reason}")
    return resumed


def restore(
    resumed: ckpt.Loaded,
    run_id: str,
    model: WorldModel,
    optimizers: Optimizers,
    dist: Dist | None = None,
) -> None:
    """Load the weights, optimiser and RNG states of `resumed` (ConfigError if they don't fit).

    Of several ranks, each takes its own RNG states when the checkpoint has one per rank
    (rank_states); otherwise rank 0's.
    """
    state = resumed.state
    try:
        if state.get("run_id") != run_id:
            raise ValueError(f"it belongs to run {state.get('run_id')}")
        load_model_state(model, state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optim"][name])
            match_layouts(opt)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"Checkpoint {resumed.path} does not fit this run "
            f"({str(exc).splitlines()[0][:160]}); restore the run's "
            f"config.json or start a new run."
        ) from None
    own = rank_state(state, dist)
    set_rng_state(own["rng"] if own else state["rng"])


def merge_accums(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The ranks' metric sums of an epoch as one (steps and seconds: rank 0's)."""
    merged: dict[str, Any] = {
        "sums": {},
        "weights": {},
        "steps": states[0]["steps"],
        "samples": 0,
        "seconds": states[0]["seconds"],
    }
    for one in states:
        for key, value in one["sums"].items():
            merged["sums"][key] = merged["sums"].get(key, 0.0) + value
            merged["weights"][key] = merged["weights"].get(key, 0) + one["weights"][key]
        merged["samples"] += one["samples"]
    return merged


def match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give each loaded optimiser state tensor its parameter's memory layout.

    Fused Adam pairs a parameter with its states element by element in memory order: states
    saved with perf.channels_last on and loaded with it off (or the reverse) would mix weights.
    """
    for param, per_param in opt.state.items():
        for key, value in per_param.items():
            if (
                isinstance(value, torch.Tensor)
                and value.shape == param.shape
                and value.stride() != param.stride()
            ):
                per_param[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def save(
    rt: Runtime,
    cfg: RunConfig,
    model: WorldModel,
    optimizers: Optimizers,
    stats: Stats,
    counters: dict[str, Any],
    kind: str,
) -> None:
    """Commit everything needed to continue exactly, then announce it ("epoch" or "latest").

    `counters`: TrainState.checkpoint(), the epoch to train next, samples_done, step, accum.
    Of several ranks, every rank calls it: each one's RNG states and metric sums go to rank 0,
    which alone writes; the file then has them by rank under "ranks" (and "accum" summed).
    """
    folder = rt.run_dir / rundir.CHECKPOINTS
    epoch, samples, step = counters["epoch"], counters["samples_done"], counters["step"]
    rng = rng_state()
    ranks = None
    if rt.dist.enabled:
        ranks = rt.dist.gather_object({"rng": rng, "accum": counters["accum"]}, "checkpoint_gather")
        if not rt.dist.is_main:
            return
    payload = {
        "format": ckpt.FORMAT,
        "run_id": rt.run_id,
        "config": to_dict(cfg),
        **counters,
        "model": model_state(model),
        "optim": {k: o.state_dict() for k, o in optimizers.items()},
        "rng": rng,
        "stats": stats,
    }
    if ranks is not None:
        payload["ranks"] = ranks
        payload["accum"] = merge_accums([r["accum"] for r in ranks])
    # An epoch checkpoint is written at the start of the next epoch: it names the one finished.
    meta = {
        "run_id": rt.run_id,
        "epoch": epoch - 1 if samples == 0 else epoch,
        "next_epoch": epoch,
        "samples_done": samples,
        "step": step,
        "config_hash": config_hash(cfg),
    }
    fault("checkpoint")
    name, manifest = _commit(folder, kind, payload, meta, cfg.training.keep_checkpoints)
    fault("ckpt_before_event")
    rt.checkpoint(
        path=str(folder / name),
        kind=kind,
        epoch=meta["epoch"],
        step=step,
        samples_done=samples,
        sha256=manifest["sha256"],
        size=manifest["size"],
    )


def _commit(
    folder: Path, kind: str, payload: dict[str, Any], meta: dict[str, Any], keep: int
) -> tuple[str, dict[str, Any]]:
    """Write the checkpoint file: an epoch's (model_latest.pth then links to it; only the
    newest `keep` epochs stay) or model_latest.pth itself; its name and manifest."""
    if kind == "epoch":
        name = rundir.epoch_checkpoint(meta["next_epoch"] - 1)
        manifest = ckpt.save(folder, name, payload, meta, latest=True)
        ckpt.prune(folder, keep)
        return name, manifest
    return ckpt.LATEST, ckpt.save(folder, ckpt.LATEST, payload, meta, latest=False)

# SPDX-License-Identifier: MIT
"""What a training carries across steps and restarts: its counters, its epoch's metric sums,
and the random generators' states."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from dinowm.train.dist import Dist


def rank_state(state: dict[str, Any], dist: Dist | None) -> dict[str, Any] | None:
    """This rank's {"rng", "accum"} in a checkpoint written by as many ranks, else None."""
    ranks = state.get("ranks")
    if dist is None or not dist.enabled or not ranks or len(ranks) != dist.world:
        return None
    return ranks[dist.rank]


def reduce_accum(accum: Accum, dist: Dist) -> Accum:
    """The sums of every rank's samples (all-reduced sums and counts, never means of means);
    `accum` itself with one rank."""
    if not dist.enabled:
        return accum
    keys = sorted(set().union(*dist.all_gather_object(sorted(accum.sums), "metric_keys")))
    sums = dist.sum(
        [accum.sums.get(k, 0.0) for k in keys]
        + [float(accum.weights.get(k, 0)) for k in keys]
        + [float(accum.samples)],
        "metric_sums",
    )
    total = Accum({"steps": accum.steps, "seconds": accum.seconds, "samples": int(sums[-1])})
    total.sums = dict(zip(keys, sums[: len(keys)]))
    total.weights = {k: int(w) for k, w in zip(keys, sums[len(keys) : 2 * len(keys)])}
    return total


def rank_accum(
    saved: dict[str, Any], accum: Accum, dist: Dist, log: Callable[[str], None]
) -> Accum:
    """This rank's metric sums of the epoch a checkpoint stopped in.

    A checkpoint of as many ranks has each one's; one of another rank count (nproc_per_node
    changed) has them summed, which rank 0 takes over (epoch metrics stay right, each other
    rank's dropout stream then starts from rank 0's saved one).
    """
    own = rank_state(saved, dist)
    if own is not None:
        return Accum(own["accum"])
    log(
        f"checkpoint of {len(saved.get('ranks') or [None])} rank(s) resumed by "
        f"{dist.world}: RNG streams are not continued exactly"
    )
    return accum if dist.is_main else Accum({"steps": accum.steps, "seconds": accum.seconds})


class Accum:
    """Sample-weighted running sums of an epoch's metrics (restored on a mid-epoch resume)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.weights: dict[str, int] = dict(state.get("weights", {}))
        self.steps: int = state.get("steps", 0)
        self.samples: int = state.get("samples", 0)
        self.seconds: float = state.get("seconds", 0.0)

    def add(self, out: dict[str, torch.Tensor], n: int, skip: tuple[str, ...] = ()) -> None:
        """Add the scalar outputs of a forward pass over `n` samples (but the keys in skip)."""
        for key, value in out.items():
            if value.dim() == 0 and key not in skip:
                self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
                self.weights[key] = self.weights.get(key, 0) + n
        self.samples += n

    def means(self, prefix: str) -> dict[str, float]:
        """Sample-weighted means, keys as `{prefix}_{metric}`, sorted."""
        return {f"{prefix}_{k}": self.sums[k] / self.weights[k] for k in sorted(self.sums)}

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores under "accum"."""
        return {
            "sums": self.sums,
            "weights": self.weights,
            "steps": self.steps,
            "samples": self.samples,
            "seconds": self.seconds,
        }


@dataclass
class TrainState:
    """The counters a checkpoint carries besides weights, optimiser and RNG states."""

    epoch: int = 1  # the epoch being trained, 1-based
    step: int = 0  # optimiser steps since the run began
    samples: int = 0  # samples of this epoch already trained on (a resume skips them)
    accum: Accum = field(default_factory=Accum)  # this epoch's metric sums, steps and seconds
    # this attempt's view of the epoch (not in a checkpoint): the step it resumed at, and when
    # the epoch began, counting the seconds that earlier attempts trained of it
    first_step: int = 0
    epoch_start: float = 0.0

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> TrainState:
        """Where a checkpoint stood."""
        return cls(
            epoch=saved["epoch"],
            step=saved["step"],
            samples=saved["samples_done"],
            accum=Accum(saved["accum"]),
        )

    def checkpoint(self) -> dict[str, Any]:
        """The counters under a checkpoint's keys (format 1)."""
        return {
            "epoch": self.epoch,
            "samples_done": self.samples,
            "step": self.step,
            "accum": self.accum.state(),
        }

    def next_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch, self.samples, self.accum = self.epoch + 1, 0, Accum()


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states in weights_only-loadable types."""
    np_state = cast(tuple[Any, ...], np.random.get_state())  # the legacy tuple form
    state: dict[str, Any] = {
        "python": [list(random.getstate()[1]), random.getstate()[0]],
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    internal, version = state["python"]
    random.setstate((version, tuple(internal), None))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

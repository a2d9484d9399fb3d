# SPDX-License-Identifier: MIT
"""The order of samples: per-epoch permutations, the public code's one order, each rank's
micro-batches of an optimiser step, and validation shards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

from dinowm.data.datasets import SliceDataset
from dinowm.errors import DataError


class EpochSampler(Sampler[int]):
    """A new permutation every epoch from seed + epoch, or one given `order` (n,) for every
    epoch: reproducible and resumable mid-epoch."""

    def __init__(
        self,
        n: int,
        seed: int,
        epoch: int = 0,
        start_index: int = 0,
        order: torch.Tensor | None = None,
    ) -> None:
        if order is not None and order.shape != (n,):
            raise ValueError(f"order of shape {tuple(order.shape)} for {n} samples")
        self.n, self.seed, self.order = n, seed, order
        self.set_epoch(epoch, start_index)

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Select the epoch's order; skip its first `start_index` samples (already trained on)."""
        if not 0 <= start_index <= self.n:
            raise ValueError(f"start_index {start_index} outside 0..{self.n}")
        self.epoch, self.start_index = epoch, start_index

    def permutation(self, epoch: int) -> torch.Tensor:
        """(n,) int64: the order of `epoch`."""
        if self.order is not None:
            return self.order
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation(self.epoch)[self.start_index :].tolist())

    def __len__(self) -> int:
        return self.n - self.start_index

    def state_dict(self) -> dict[str, int]:
        """Where the sampler stands; the caller sets start_index to the samples it consumed."""
        return {
            "n": self.n,
            "seed": self.seed,
            "epoch": self.epoch,
            "start_index": self.start_index,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where state_dict() stood; DataError for another dataset or seed."""
        if (state["n"], state["seed"]) != (self.n, self.seed):
            raise DataError(
                f"sampler state is for {state['n']} samples with seed {state['seed']}, "
                f"this dataset has {self.n} with seed {self.seed}; resume on the "
                "same data and settings"
            )
        self.set_epoch(state["epoch"], state["start_index"])


def public_order(ds: SliceDataset, seed: int) -> torch.Tensor:
    """(S,) int64 indices of `ds`: the public TrajSlicerDataset's one order of the same slices.

    It lists the slices episode by episode in the split's order, starts ascending, and permutes
    them once with np.random.permutation right after np.random.seed(training.seed) (its
    DataLoader has shuffle=False, so every epoch uses that order).
    """
    counts = torch.bincount(ds.slices[:, 0], minlength=len(ds.lengths))  # slices per episode
    first = torch.cumsum(counts, 0) - counts  # ds lists its episodes in ascending order
    listed = torch.cat(
        [torch.arange(int(first[e]), int(first[e] + counts[e])) for e in ds.split_order]
        or [torch.zeros(0, dtype=torch.int64)]
    )
    perm = np.random.RandomState(seed).permutation(len(listed))  # the public global-RNG draw
    return listed[torch.from_numpy(perm)]


class Step(NamedTuple):
    """One optimiser step as one rank sees it."""

    n: int  # samples of the whole step, over all ranks (the loss is their mean)
    batches: list[list[int]]  # this rank's micro-batches (dataset indices), at most grad_accum
    standin: bool  # no sample of this step is this rank's: one stand-in sample, loss weight 0


def rank_share(n: int, world: int, rank: int) -> tuple[int, int]:
    """[lo, hi) of `rank` in n items split as evenly as possible (the first n % world get one
    more), contiguous and in rank order, so the shares cover 0..n exactly once."""
    lo = rank * (n // world) + min(rank, n % world)
    return lo, lo + n // world + (rank < n % world)


def plan_steps(
    order: Sequence[int], micro: int, grad_accum: int, world: int = 1, rank: int = 0
) -> list[Step]:
    """This rank's part of each optimiser step over `order` (the epoch's global order).

    A step takes the next grad_accum * world * micro samples of the order (the last step the
    rest); rank r trains on its even share of them (rank_share), in micro-batches of at most
    `micro`. Every sample of the order is in exactly one rank's share; the last step, when
    shorter, gives ranks shares differing by at most one sample. A rank whose share is empty
    (fewer samples left than ranks) runs one stand-in sample with loss weight 0, so that it
    still takes part in the gradient all-reduce. With one rank this is the order cut in
    micro-batches, grad_accum of them a step.
    """
    size = grad_accum * world * micro
    steps = []
    for s in range(0, len(order), size):
        chunk = list(order[s : s + size])
        lo, hi = rank_share(len(chunk), world, rank)
        mine = chunk[lo:hi]
        if mine:
            steps.append(
                Step(len(chunk), [mine[i : i + micro] for i in range(0, len(mine), micro)], False)
            )
        else:
            steps.append(Step(len(chunk), [chunk[:1]], True))
    return steps


class RankBatches(Sampler[list[int]]):
    """The loader's batch sampler: this rank's micro-batches of the sampler's epoch, in order."""

    def __init__(
        self, sampler: EpochSampler, micro: int, grad_accum: int, world: int = 1, rank: int = 0
    ) -> None:
        self.sampler, self.micro, self.grad_accum = sampler, micro, grad_accum
        self.world, self.rank = world, rank

    def steps(self) -> list[Step]:
        """The epoch's remaining steps (from the sampler's start index on)."""
        return plan_steps(list(self.sampler), self.micro, self.grad_accum, self.world, self.rank)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.steps():
            yield from step.batches

    def __len__(self) -> int:
        return sum(len(step.batches) for step in self.steps())


def shard_batches(n: int, micro: int, world: int, rank: int) -> list[list[int]]:
    """Rank's contiguous share of 0..n-1 (rank_share) in batches of at most `micro`."""
    lo, hi = rank_share(n, world, rank)
    return [list(range(i, min(i + micro, hi))) for i in range(lo, hi, micro)]

"""Training samples: slice-first episode windows, trajectory split, the sample order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from dinowm.errors import DataError
from dinowm.train.datacheck import (check_dataset, slice_span, starts_in,  # noqa: F401
                                    validate_dataset)
from dinowm.train.episodes import FrameStore
from dinowm.train.normalize import (Stats, check_stats, compute_stats, constant_columns,
                                    identity_stats, normalise)

__all__ = ["SliceDataset", "EpochSampler", "RankBatches", "Step", "plan_steps", "rank_share",
           "public_order", "build_datasets", "check_dataset", "validate_dataset",
           "split_episodes", "split_order", "prepare_frames", "reference_sample",
           "ReferenceDataset"]


class SliceDataset(Dataset):
    """Every window of F = num_hist + num_pred frames, frameskip apart, in the given episodes."""

    def __init__(self, frames: FrameStore, actions: torch.Tensor, proprio: torch.Tensor,
                 lengths: list[int], episodes: list[int], num_frames: int,
                 frameskip: int, split_order: list[int] | None = None) -> None:
        self.frames, self.actions, self.proprio = frames, actions, proprio  # normalised
        self.lengths, self.episodes = lengths, episodes
        # the same episodes in the split's random order (the public slicer enumerates them so)
        self.split_order = episodes if split_order is None else split_order
        self.num_frames, self.frameskip = num_frames, frameskip
        span = num_frames * frameskip
        starts = [(e, s) for e in episodes for s in range(starts_in(lengths[e], span))]
        # (S, 2) int64 rows of (episode, start): one tensor, not S Python objects per worker
        self.slices = torch.tensor(starts, dtype=torch.int64).reshape(-1, 2)
        self.tokens: Any = None  # a features.TokenStore when the frozen-feature cache is on

    def __len__(self) -> int:
        return self.slices.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ep, start = self.slices[i].tolist()
        return self.window(ep, start, self.num_frames)

    def window(self, ep: int, start: int, num_frames: int) -> dict[str, torch.Tensor]:
        """Frames start + k*fs (k < num_frames), their proprio and the fs actions after each."""
        fs = self.frameskip
        if start < 0 or start + num_frames * fs > self.lengths[ep]:
            raise IndexError(f"window of {num_frames} frames x {fs} from {start} does not fit "
                             f"episode {ep} of {self.lengths[ep]} frames")
        kept = slice(start, start + (num_frames - 1) * fs + 1, fs)
        actions = self.actions[ep, start : start + num_frames * fs]  # (F*fs, A)
        extra = {} if self.tokens is None else {
            "tokens": self.tokens.tokens(ep, start, num_frames, fs)}  # (F, P, D) fp16
        return {**extra,
            "visual": self.frames.frames(ep, start, num_frames, fs),  # (F, 3, H, W) uint8
            "proprio": self.proprio[ep, kept].clone(),  # (F, P)
            "action": actions.reshape(num_frames, -1).clone(),  # (F, fs*A): a[t], ..., a[t+fs-1]
        }


    def segment(self, ep: int, start: int, steps: int) -> dict[str, torch.Tensor]:
        """Frames start, start + fs, ..., start + steps*fs, their proprio, and the steps actions
        between them (a rollout's true trajectory: steps + 1 frames, the last one needs no
        action, so it may be the episode's last frame)."""
        fs = self.frameskip
        if start < 0 or steps < 1 or start + steps * fs >= self.lengths[ep]:
            raise IndexError(f"segment of {steps} steps x {fs} from {start} does not fit "
                             f"episode {ep} of {self.lengths[ep]} frames")
        kept = slice(start, start + steps * fs + 1, fs)
        return {"visual": self.frames.frames(ep, start, steps + 1, fs),  # (steps+1, 3, H, W) uint8
                "proprio": self.proprio[ep, kept].clone(),  # (steps+1, P)
                "action": self.actions[ep, start : start + steps * fs].reshape(steps, -1).clone()}


class EpochSampler(Sampler[int]):
    """A new permutation every epoch from seed + epoch, or one given `order` (n,) for every
    epoch: reproducible and resumable mid-epoch."""

    def __init__(self, n: int, seed: int, epoch: int = 0, start_index: int = 0,
                 order: torch.Tensor | None = None) -> None:
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
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch,
                "start_index": self.start_index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue where state_dict() stood; DataError for another dataset or seed."""
        if (state["n"], state["seed"]) != (self.n, self.seed):
            raise DataError(f"sampler state is for {state['n']} samples with seed {state['seed']}, "
                            f"this dataset has {self.n} with seed {self.seed}; resume on the "
                            "same data and settings")
        self.set_epoch(state["epoch"], state["start_index"])


def public_order(ds: SliceDataset, seed: int) -> torch.Tensor:
    """(S,) int64 indices of `ds`: the public TrajSlicerDataset's one order of the same slices.

    It lists the slices episode by episode in the split's order, starts ascending, and permutes
    them once with np.random.permutation right after np.random.seed(training.seed) (its
    DataLoader has shuffle=False, so every epoch uses that order).
    """
    counts = torch.bincount(ds.slices[:, 0], minlength=len(ds.lengths))  # slices per episode
    first = torch.cumsum(counts, 0) - counts  # ds lists its episodes in ascending order
    listed = torch.cat([torch.arange(int(first[e]), int(first[e] + counts[e]))
                        for e in ds.split_order] or [torch.zeros(0, dtype=torch.int64)])
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


def plan_steps(order: Sequence[int], micro: int, grad_accum: int, world: int = 1,
               rank: int = 0) -> list[Step]:
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
            steps.append(Step(len(chunk), [mine[i : i + micro]
                                           for i in range(0, len(mine), micro)], False))
        else:
            steps.append(Step(len(chunk), [chunk[:1]], True))
    return steps


class RankBatches(Sampler[list[int]]):
    """The loader's batch sampler: this rank's micro-batches of the sampler's epoch, in order."""

    def __init__(self, sampler: EpochSampler, micro: int, grad_accum: int, world: int = 1,
                 rank: int = 0) -> None:
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


def split_order(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Trajectory split as in the public code (randperm with seed), in the permutation's order
    (the public subsets index trajectories in it); at least 1 val episode if n >= 2."""
    n_train = int(ratio * n)
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    else:
        n_train = n
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[:n_train], order[n_train:]


def split_episodes(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """The split's episodes, sorted."""
    train, val = split_order(n, ratio, seed)
    return sorted(train), sorted(val)


def build_datasets(path: str | Path, *, layout: str = "auto", n_rollouts: int = 0,
                   split_ratio: float = 0.9, split_seed: int = 42, normalize_action: bool = True,
                   frameskip: int = 5, num_hist: int = 3, num_pred: int = 1,
                   stats: dict | None = None, stats_from: str = "train",
                   ) -> tuple[SliceDataset, SliceDataset, Stats, dict[str, Any]]:
    """(train, val, stats, info): validated, split by trajectory, normalised.

    The statistics come from the train split's episodes, or with stats_from="all" from every
    episode (the public loaders); `stats` (from a checkpoint) replace them. Episodes too short
    for one slice are skipped with a warning in info["warnings"]; the split is made before
    skipping, so it is the public code's split for the same seed.
    """
    eps, rep = validate_dataset(path, layout, n_rollouts, frameskip, num_hist, num_pred)
    warnings = list(rep.warnings)
    span = slice_span(frameskip, num_hist, num_pred)
    usable = {i for i, length in enumerate(eps.lengths) if starts_in(length, span) > 0}
    train_order, val_order = split_order(len(eps.lengths), split_ratio, split_seed)
    train_order = [e for e in train_order if e in usable]
    val_order = [e for e in val_order if e in usable]
    train_eps, val_eps = sorted(train_order), sorted(val_order)
    if not train_eps:
        raise DataError(f"{path}: no training episode is long enough for one slice ({span} "
                        "frames) after the split; lower frameskip/num_hist or raise split_ratio")
    if not val_eps:
        warnings.append("the validation split has no episode long enough for one slice; "
                        "validation metrics will be missing")
    action_dim, proprio_dim = eps.actions.shape[-1], eps.proprio_dim
    if stats is not None:
        stats = check_stats(stats, action_dim, proprio_dim)
    elif normalize_action:
        if stats_from not in ("train", "all"):
            raise ValueError(f"stats_from={stats_from!r}, expected 'train' or 'all'")
        # "all": every loaded episode, too short ones included, as the public loaders
        over = train_eps if stats_from == "train" else list(range(len(eps.lengths)))
        stats = compute_stats(eps.actions, eps.proprio, eps.lengths, over)
        where = "training split" if stats_from == "train" else "dataset"
        for kind in ("action", "proprio"):
            if cols := constant_columns(stats, kind):
                warnings.append(f"{kind} columns {cols} are constant in the {where}; "
                                "a different value elsewhere normalises to a huge number")
    else:
        stats = identity_stats(action_dim, proprio_dim)
    actions = normalise(eps.actions, stats, "action")  # (N, T_max, A)
    proprio = normalise(eps.proprio, stats, "proprio")  # (N, T_max, P)
    store = FrameStore(eps.frame_files, rep.facts["image"]["channels_last"],
                       cache=64 if rep.facts["frames_mmap"] else 2)
    num_frames = num_hist + num_pred
    train, val = (SliceDataset(store, actions, proprio, eps.lengths, e, num_frames, frameskip,
                               split_order=o)
                  for e, o in ((train_eps, train_order), (val_eps, val_order)))
    h, w, _ = rep.facts["image"]["shape"]
    info = {
        "path": str(path), "layout": eps.layout, "episodes": len(eps.lengths),
        "train_episodes": train_eps, "val_episodes": val_eps,
        "train_slices": len(train), "val_slices": len(val),
        "state_dim": int(eps.states.shape[-1]), "action_dim": int(action_dim),
        "sample_action_dim": int(action_dim) * frameskip, "proprio_dim": int(proprio_dim),
        "image_size": [h, w], "skipped_episodes": rep.facts["too_short"],
        "lengths": rep.facts["lengths"], "warnings": warnings,
    }
    return train, val, stats, info


def prepare_frames(visual: torch.Tensor, img_size: int) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float (..., 3, img_size, img_size) in [-1, 1] on any device.

    The public transform: Resize(img_size) of the shorter side (bilinear, antialiased),
    CenterCrop(img_size), Normalize(0.5, 0.5).
    """
    lead, (c, h, w) = visual.shape[:-3], visual.shape[-3:]
    x = visual.reshape(-1, c, h, w).float()
    if (h, w) != (img_size, img_size):
        # shorter side to img_size, the longer one truncated, as torchvision's Resize(int)
        size = (img_size, int(img_size * w / h)) if h <= w else (int(img_size * h / w), img_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        top, left = (x.shape[-2] - img_size) // 2, (x.shape[-1] - img_size) // 2
        x = x[..., top : top + img_size, left : left + img_size]
    return (x / 127.5 - 1.0).reshape(*lead, c, img_size, img_size)


class ReferenceDataset(Dataset):
    """The public loader's costs: every sample transforms its whole episode (perf.mode=reference)."""

    def __init__(self, ds: SliceDataset, img_size: int) -> None:
        self.ds, self.img_size = ds, img_size

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return reference_sample(self.ds, i, self.img_size)


def reference_sample(ds: SliceDataset, i: int, img_size: int = 224) -> dict[str, torch.Tensor]:
    """The public loader's cost: transform all T frames of the episode, then keep F (bench only)."""
    from torchvision import transforms

    ep, start = ds.slices[i].tolist()
    sample = ds.window(ep, start, ds.num_frames)
    whole = ds.frames.episode(ep)[: ds.lengths[ep]].permute(0, 3, 1, 2) / 255.0  # (T, 3, H, W)
    transform = transforms.Compose([transforms.Resize(img_size), transforms.CenterCrop(img_size),
                                    transforms.Normalize([0.5] * 3, [0.5] * 3)])
    visual = transform(whole)[start : start + ds.num_frames * ds.frameskip : ds.frameskip]
    return {**sample, "visual": visual}

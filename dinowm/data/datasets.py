# SPDX-License-Identifier: MIT
"""Training samples: slice-first episode windows, the trajectory split, frames as the model
sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dinowm.data.check import Report, slice_span, starts_in, validate_dataset
from dinowm.data.episodes import Episodes, FrameStore
from dinowm.data.normalize import (
    Stats,
    check_stats,
    compute_stats,
    constant_columns,
    identity_stats,
    normalise,
)
from dinowm.errors import DataError
from dinowm.schema import RunConfig


class SliceDataset(Dataset):
    """Every window of F = num_hist + num_pred frames, frameskip apart, in the given episodes."""

    def __init__(
        self,
        frames: FrameStore,
        actions: torch.Tensor,
        proprio: torch.Tensor,
        lengths: list[int],
        episodes: list[int],
        num_frames: int,
        frameskip: int,
        split_order: list[int] | None = None,
    ) -> None:
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
            raise IndexError(
                f"window of {num_frames} frames x {fs} from {start} does not fit "
                f"episode {ep} of {self.lengths[ep]} frames"
            )
        kept = slice(start, start + (num_frames - 1) * fs + 1, fs)
        actions = self.actions[ep, start : start + num_frames * fs]  # (F*fs, A)
        extra = (
            {} if self.tokens is None else {"tokens": self.tokens.tokens(ep, start, num_frames, fs)}
        )  # (F, P, D) fp16
        return {
            **extra,
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
            raise IndexError(
                f"segment of {steps} steps x {fs} from {start} does not fit "
                f"episode {ep} of {self.lengths[ep]} frames"
            )
        kept = slice(start, start + steps * fs + 1, fs)
        return {
            "visual": self.frames.frames(ep, start, steps + 1, fs),  # (steps+1, 3, H, W) uint8
            "proprio": self.proprio[ep, kept].clone(),  # (steps+1, P)
            "action": self.actions[ep, start : start + steps * fs].reshape(steps, -1).clone(),
        }


def split_order(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Trajectory split as in the public code (randperm with seed), in the permutation's order
    (the public subsets index trajectories in it); at least 1 val episode if n >= 2."""
    n_train = min(max(int(ratio * n), 1), n - 1) if n >= 2 else n
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[:n_train], order[n_train:]


def split_episodes(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """The split's episodes, sorted."""
    train, val = split_order(n, ratio, seed)
    return sorted(train), sorted(val)


def run_datasets(
    cfg: RunConfig, **given: Any
) -> tuple[SliceDataset, SliceDataset, Stats, dict[str, Any]]:
    """build_datasets with a run's data settings (its path, layout, rollouts, split, action
    normalisation, frameskip and window), the one place they are read for it; `given` adds
    what the caller decides (stats from a checkpoint, stats_from)."""
    return build_datasets(
        cfg.data.path,
        layout=cfg.data.layout,
        n_rollouts=cfg.data.n_rollouts,
        split_ratio=cfg.data.split_ratio,
        split_seed=cfg.data.split_seed,
        normalize_action=cfg.data.normalize_action,
        frameskip=cfg.frameskip,
        num_hist=cfg.num_hist,
        num_pred=cfg.num_pred,
        **given,
    )


def build_datasets(
    path: str | Path,
    *,
    layout: str = "auto",
    n_rollouts: int = 0,
    split_ratio: float = 0.9,
    split_seed: int = 42,
    normalize_action: bool = True,
    frameskip: int = 5,
    num_hist: int = 3,
    num_pred: int = 1,
    stats: dict | None = None,
    stats_from: str = "train",
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
    train_order, val_order = _usable_split(path, eps.lengths, span, split_ratio, split_seed)
    train_eps, val_eps = sorted(train_order), sorted(val_order)
    if not val_eps:
        warnings.append(
            "the validation split has no episode long enough for one slice; "
            "validation metrics will be missing"
        )
    stats = _statistics(eps, train_eps, stats, normalize_action, stats_from, warnings)
    actions = normalise(eps.actions, stats, "action")  # (N, T_max, A)
    proprio = normalise(eps.proprio, stats, "proprio")  # (N, T_max, P)
    store = FrameStore(
        eps.frame_files,
        rep.facts["image"]["channels_last"],
        cache=64 if rep.facts["frames_mmap"] else 2,
    )
    num_frames = num_hist + num_pred
    train, val = (
        SliceDataset(store, actions, proprio, eps.lengths, e, num_frames, frameskip, split_order=o)
        for e, o in ((train_eps, train_order), (val_eps, val_order))
    )
    info = _info(path, eps, rep, train, val, train_eps, val_eps, frameskip, warnings)
    return train, val, stats, info


def _info(
    path: str | Path,
    eps: Episodes,
    rep: Report,
    train: SliceDataset,
    val: SliceDataset,
    train_eps: list[int],
    val_eps: list[int],
    frameskip: int,
    warnings: list[str],
) -> dict[str, Any]:
    """What a training reports of its data: layout, dims, split, slices, skipped episodes."""
    action_dim, proprio_dim = eps.actions.shape[-1], eps.proprio_dim
    h, w, _ = rep.facts["image"]["shape"]
    info: dict[str, Any] = {
        "path": str(path),
        "layout": eps.layout,
        "episodes": len(eps.lengths),
        "train_episodes": train_eps,
        "val_episodes": val_eps,
        "train_slices": len(train),
        "val_slices": len(val),
        "state_dim": int(eps.states.shape[-1]),
        "action_dim": int(action_dim),
        "sample_action_dim": int(action_dim) * frameskip,
        "proprio_dim": int(proprio_dim),
        "image_size": [h, w],
        "skipped_episodes": rep.facts["too_short"],
        "lengths": rep.facts["lengths"],
        "warnings": warnings,
    }
    return info


def _usable_split(
    path: str | Path, lengths: list[int], span: int, ratio: float, seed: int
) -> tuple[list[int], list[int]]:
    """The public code's trajectory split, less the episodes too short for one slice of
    `span` frames; DataError when no training episode is left."""
    usable = {i for i, length in enumerate(lengths) if starts_in(length, span) > 0}
    train_order, val_order = split_order(len(lengths), ratio, seed)
    train_order = [e for e in train_order if e in usable]
    if not train_order:
        raise DataError(
            f"{path}: no training episode is long enough for one slice ({span} "
            "frames) after the split; lower frameskip/num_hist or raise split_ratio"
        )
    return train_order, [e for e in val_order if e in usable]


def _statistics(
    eps: Episodes,
    train_eps: list[int],
    stats: dict | None,
    normalize_action: bool,
    stats_from: str,
    warnings: list[str],
) -> Stats:
    """The normalisation: a checkpoint's `stats`, z-scores over the train split's or every
    episode's valid timesteps (warning of constant columns), or the identity."""
    action_dim, proprio_dim = eps.actions.shape[-1], eps.proprio_dim
    if stats is not None:
        return check_stats(stats, action_dim, proprio_dim)
    if not normalize_action:
        return identity_stats(action_dim, proprio_dim)
    if stats_from not in ("train", "all"):
        raise ValueError(f"stats_from={stats_from!r}, expected 'train' or 'all'")
    # "all": every loaded episode, too short ones included, as the public loaders
    over = train_eps if stats_from == "train" else list(range(len(eps.lengths)))
    computed = compute_stats(eps.actions, eps.proprio, eps.lengths, over)
    where = "training split" if stats_from == "train" else "dataset"
    for kind in ("action", "proprio"):
        if cols := constant_columns(computed, kind):
            warnings.append(
                f"{kind} columns {cols} are constant in the {where}; "
                "a different value elsewhere normalises to a huge number"
            )
    return computed


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
    """The public loader's costs: every sample transforms its whole episode
    (perf.mode=reference)."""

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
    transform = transforms.Compose(
        [
            transforms.Resize(img_size),
            transforms.CenterCrop(img_size),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    visual = transform(whole)[start : start + ds.num_frames * ds.frameskip : ds.frameskip]
    return {**sample, "visual": visual}

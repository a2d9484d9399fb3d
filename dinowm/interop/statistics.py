# SPDX-License-Identifier: MIT
"""The normalisation the public planner will use against the one a run trained with.

The public `plan.py` builds its dataset from hydra.yaml and its loaders recompute the action
and proprio statistics over every episode (std + 1e-6). A run trained with data.stats_from=train
(the fast mode's default) normalised with the train split's: its predictor then sees actions
scaled a little differently at planning time. export-checkpoint says by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dinowm.data.check import validate_dataset
from dinowm.data.normalize import STAT_KEYS, Stats, compute_stats
from dinowm.errors import DinowmError
from dinowm.schema import RunConfig
from dinowm.train.mode import Mode


@dataclass(frozen=True)
class Difference:
    """The largest difference of one statistic, relative to the public loader's std."""

    relative: float  # |ours - public| / public std, of a mean or a std
    what: str  # 'action std, column 3'


def public_statistics(cfg: RunConfig) -> Stats:
    """The statistics the public loaders compute over every episode of the run's dataset."""
    d = cfg.data
    eps, _ = validate_dataset(
        d.path, d.layout, d.n_rollouts, cfg.frameskip, cfg.num_hist, cfg.num_pred
    )
    return compute_stats(eps.actions, eps.proprio, eps.lengths, list(range(len(eps.lengths))))


def largest_difference(ours: dict[str, Any], public: dict[str, Any]) -> Difference:
    """The statistic (a mean or a std of one column) furthest from the public loader's, in
    units of the public std: how far a normalised input moves."""
    worst = Difference(0.0, "")
    for kind in ("action", "proprio"):
        std = public[f"{kind}_std"]
        for stat in ("mean", "std"):
            key = f"{kind}_{stat}"
            for j, (a, b) in enumerate(zip(ours[key], public[key])):
                relative = abs(float(a) - float(b)) / abs(float(std[j]))
                if relative > worst.relative:
                    worst = Difference(relative, f"{kind} {stat}, column {j}")
    return worst


def planner_warning(cfg: RunConfig, stats: dict[str, Any]) -> str | None:
    """A warning when the public planner will normalise with other statistics than the run
    trained with (None when they agree or the run did not normalise)."""
    if not cfg.data.normalize_action:
        return None  # hydra.yaml says normalize_action false: the planner does not either
    try:
        public = public_statistics(cfg)
    except (DinowmError, OSError) as exc:
        return (
            f"the public planner recomputes the normalisation statistics over every episode "
            f"of {cfg.data.path}, which could not be read to compare ({exc}); check that "
            f"data.path is the dataset the run trained on"
        )
    diff = largest_difference({k: stats[k] for k in STAT_KEYS}, public)
    if diff.relative <= 1e-6:
        return None
    return (
        f"the public planner recomputes the statistics over every episode of {cfg.data.path}; "
        f"this run trained with those of data.stats_from={Mode.of(cfg).stats_from}, which "
        f"differ by up to {diff.relative:.1%} of the public std ({diff.what}), so the planner "
        f"scales actions and proprio differently from training. Fix: train with "
        f"data.stats_from=all (the public loaders' statistics)."
    )

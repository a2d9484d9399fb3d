# SPDX-License-Identifier: MIT
"""Z-score statistics of actions and proprio: from the chosen episodes, kept as plain lists."""

from __future__ import annotations

import torch

from dinowm.errors import DataError

STAT_KEYS = ("action_mean", "action_std", "proprio_mean", "proprio_std")
STD_EPS = 1e-6  # added to every std, so constant columns do not divide by zero

Stats = dict[str, list[float]]


def _mean_std(table: torch.Tensor, lengths: list[int], episodes: list[int]) -> tuple[list, list]:
    rows = torch.cat([table[e, : lengths[e]] for e in episodes]).double()  # (sum T, D)
    std = rows.std(dim=0) if rows.shape[0] > 1 else torch.zeros(rows.shape[1])
    return rows.mean(dim=0).tolist(), (std + STD_EPS).tolist()


def compute_stats(
    actions: torch.Tensor, proprio: torch.Tensor, lengths: list[int], episodes: list[int]
) -> Stats:
    """Per-dim mean and std (+1e-6) over the valid timesteps of `episodes` only."""
    if not episodes:
        raise DataError(
            "no training episodes to compute normalisation statistics from; "
            "raise split_ratio or add episodes"
        )
    a_mean, a_std = _mean_std(actions, lengths, episodes)
    p_mean, p_std = _mean_std(proprio, lengths, episodes)
    return {
        "action_mean": a_mean,
        "action_std": a_std,
        "proprio_mean": p_mean,
        "proprio_std": p_std,
    }


def identity_stats(action_dim: int, proprio_dim: int) -> Stats:
    """Mean 0, std 1: what normalize_action=False means (for proprio too, as in the public code)."""
    return {
        "action_mean": [0.0] * action_dim,
        "action_std": [1.0] * action_dim,
        "proprio_mean": [0.0] * proprio_dim,
        "proprio_std": [1.0] * proprio_dim,
    }


def check_stats(stats: dict, action_dim: int, proprio_dim: int) -> Stats:
    """Validate statistics restored from a checkpoint against this dataset's dims."""
    missing = [k for k in STAT_KEYS if k not in stats]
    if missing:
        raise DataError(
            f"normalisation stats lack {', '.join(missing)} (have {sorted(stats)}); "
            "the checkpoint was not written by this trainer"
        )
    want = {"action": action_dim, "proprio": proprio_dim}
    for key in STAT_KEYS:
        dim = want[key.split("_")[0]]
        if len(stats[key]) != dim:
            raise DataError(
                f"normalisation stats {key} has {len(stats[key])} values but the "
                f"dataset has {dim} {key.split('_')[0]} columns; resume with the "
                "dataset the checkpoint was trained on"
            )
        if any(not (v == v and abs(v) != float("inf")) for v in stats[key]):
            raise DataError(f"normalisation stats {key} holds NaN/Inf; recompute them")
    return {k: [float(v) for v in stats[k]] for k in STAT_KEYS}


def normalise(table: torch.Tensor, stats: Stats, kind: str) -> torch.Tensor:
    """(x - mean) / std along the last dim; kind is "action" or "proprio"."""
    mean = torch.tensor(stats[f"{kind}_mean"], dtype=torch.float32)
    std = torch.tensor(stats[f"{kind}_std"], dtype=torch.float32)
    return ((table - mean) / std).to(torch.float32)


def constant_columns(stats: Stats, kind: str) -> list[int]:
    """Columns whose std is zero: any other value normalises to a huge number."""
    return [i for i, s in enumerate(stats[f"{kind}_std"]) if s <= STD_EPS * (1 + 1e-6)]

# SPDX-License-Identifier: MIT
"""Hand-made datasets on disk with every value naming its place (imports torch)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


def write_franka(root: Path, states: torch.Tensor, actions: torch.Tensor, lengths=None,
                 size: int = 8, frames: list[int] | None = None) -> Path:
    """Franka layout; frame t of every episode is filled with the value t % 256.

    metadata.pkl holds `lengths` when they are not all T_max; each NNNNNN/obses.pth holds
    `frames[ep]` frames (default: the episode's length).
    """
    root.mkdir(parents=True)
    torch.save(states, root / "states.pth")
    torch.save(actions, root / "actions.pth")
    n, t_max = states.shape[:2]
    lengths = lengths or [t_max] * n
    if lengths != [t_max] * n:
        with open(root / "metadata.pkl", "wb") as f:
            pickle.dump({"episode_lengths": lengths}, f)
    for ep, length in enumerate(frames or lengths):
        (root / f"{ep:06d}").mkdir()
        frames = (torch.arange(length) % 256).to(torch.uint8)[:, None, None, None]
        torch.save(frames.expand(length, size, size, 3).clone(), root / f"{ep:06d}" / "obses.pth")
    return root


def coded_tables(n: int, t_max: int, state_dim: int = 22, action_dim: int = 9):
    """value = 1000 * episode + 10 * timestep + column, so every entry names its place."""
    ep = torch.arange(n)[:, None, None] * 1000.0
    t = torch.arange(t_max)[None, :, None] * 10.0
    states = ep + t + torch.arange(state_dim)[None, None, :]
    actions = ep + t + torch.arange(action_dim)[None, None, :]
    return states.float(), actions.float()


def small(**kw) -> dict:
    """Slice settings for short episodes: span (2 + 1) x 2 = 6 frames."""
    return {"frameskip": 2, "num_hist": 2, "num_pred": 1, **kw}

# SPDX-License-Identifier: MIT
"""Open-loop rollouts, measured as the public training loop measures them, batched.

Each epoch the public loop draws 10 trajectories per split (a fixed numpy seed, so the same
ones every epoch), a random start and a random horizon of at least num_hist + 2 steps of
frameskip, rolls the model out from num_hist context frames and from 1 frame, and compares the
last imagined frame with the encoded true one. `public_picks` draws exactly those trajectories,
starts and horizons; `rollout_errors` evaluates them in one batch per context (the public loop
runs them one at a time: same numbers, a fraction of the time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dinowm.model.world import WorldModel

MIN_EXTRA = 2  # public: min_horizon = 2 + num_hist
MAX_DRAWS = 10_000  # the public loop redraws until a trajectory fits; ours gives up, never hangs


@dataclass(frozen=True)
class Pick:
    """One rollout: frames start, start + fs, ..., start + horizon * fs of an episode."""

    episode: int
    start: int
    horizon: int  # steps of frameskip; the rollout's last frame is the goal


def public_picks(
    order: Sequence[int],
    lengths: Sequence[int],
    num_hist: int,
    frameskip: int,
    count: int,
    seed: int,
    min_horizon: int = 0,
) -> list[Pick]:
    """The public loop's draws: trajectory, start, horizon per rollout, from numpy's seed.

    `order` lists the split's episodes in the order of the public split (a permutation, not
    sorted); `min_horizon` 0 means num_hist + 2. Fewer than `count` picks (none) when no
    trajectory is long enough, where the public loop would draw forever.
    """
    rs = np.random.RandomState(seed)  # the public np.random.seed(seed) + np.random.randint
    min_h = min_horizon or num_hist + MIN_EXTRA
    fits = [e for e in order if (lengths[e] - 1) // frameskip > min_h]
    picks: list[Pick] = []
    draws = 0
    while fits and len(picks) < count and draws < MAX_DRAWS:
        draws += 1
        ep = order[rs.randint(0, len(order))]
        length = lengths[ep]
        start = (
            rs.randint(0, length - min_h * frameskip - 1) if length > min_h * frameskip + 1 else 0
        )
        max_h = (length - start - 1) // frameskip
        if max_h > min_h:
            picks.append(Pick(ep, int(start), int(rs.randint(min_h, max_h + 1))))
    return picks


def imagine(model: WorldModel, z: Tensor, actions: Tensor, steps: int) -> Iterator[Tensor]:
    """Open loop from encoded context z (B, n, P, D): yields each imagined frame (B, 1, P, D).

    actions (B, >= n + steps - 1, A): each imagined frame but the last takes the next action's
    channels (as the public rollout); only the last num_hist frames are kept in memory.
    """
    n = z.shape[1]
    for step in range(steps):
        z_new = model.predict(z[:, -model.num_hist :])[:, -1:]  # (B, 1, P, D)
        if step < steps - 1:
            act = model.encode_actions(actions[:, n + step : n + step + 1])
            z_new = torch.cat([z_new[..., : -model.action_channels], act], dim=-1)
        yield z_new
        z = torch.cat([z, z_new], dim=1)[:, -model.num_hist :]


def stack_segments(segments: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Segments of different lengths → one batch, each padded with its own last frame/action
    (padding is only ever read after that segment's goal, which nothing looks at)."""
    frames = max(s["visual"].shape[0] for s in segments)
    out = {}
    for key in ("visual", "proprio", "action"):
        want = frames if key != "action" else frames - 1
        padded = [
            torch.cat([s[key], s[key][-1:].expand(want - s[key].shape[0], *s[key].shape[1:])])
            for s in segments
        ]
        out[key] = torch.stack(padded)
    return out


@torch.no_grad()
def rollout_errors(
    model: WorldModel,
    segments: list[dict[str, Tensor]],
    horizons: list[int],
    to_device: Callable[[dict[str, Tensor]], tuple[Tensor, Tensor, Tensor]],
    contexts: Sequence[int],
) -> dict[str, float]:
    """Mean latent error of the frame at each segment's horizon, per number of context frames.

    segments: {"visual" (H_i + 1, 3, h, w), "proprio" (H_i + 1, P), "action" (H_i, A)};
    keys as the public loop logs them: z_visual_err_rollout (num_hist context) and
    z_visual_err_rollout_1framestart (1 frame), and the same for proprio.
    """
    visual, proprio, action = to_device(stack_segments(segments))  # (B, H + 1, ...), (B, H, A)
    rows = torch.arange(len(horizons), device=visual.device)
    at = torch.tensor(horizons, device=visual.device)
    goal_v, goal_p = visual[rows, at][:, None], proprio[rows, at][:, None]  # (B, 1, ...)
    z_goal = model.encode(goal_v, goal_p, action[:, :1])  # its action channels are never compared
    out: dict[str, float] = {}
    for n in contexts:
        z = model.encode(visual[:, :n], proprio[:, :n], action[:, :n])  # (B, n, P, D)
        last = torch.empty_like(z_goal)
        for step, z_new in enumerate(imagine(model, z, action, max(horizons) + 1 - n)):
            done = at == n + step  # the segments whose goal frame this step imagined
            last[done] = z_new[done]
        suffix = "rollout" if n == model.num_hist else f"rollout_{n}framestart"
        for key, err in per_sample_errors(model, last, z_goal).items():
            out[f"{key}_{suffix}"] = float(err.mean())
    return out


def per_sample_errors(model: WorldModel, z: Tensor, z_goal: Tensor) -> dict[str, Tensor]:
    """(B,) MSE of the visual channels and of the proprio embedding, per sample."""
    v, p = model.visual_dim, model.visual_dim + model.proprio_emb_dim
    return {
        "z_visual_err": (z[..., :v].float() - z_goal[..., :v].float()).pow(2).flatten(1).mean(1),
        "z_proprio_err": (z[:, :, 0, v:p].float() - z_goal[:, :, 0, v:p].float())
        .pow(2)
        .flatten(1)
        .mean(1),
    }

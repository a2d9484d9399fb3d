# SPDX-License-Identifier: MIT
"""Planning to goals and judging the plans: each planner's actions for every goal against the
true actions (the oracle ratio, the action error), random actions (the ranking) and, with a
decoder, the goal image (image metrics of the imagined final frame)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dinowm.evaluate.planning import CemSettings, GdSettings, Planner
from dinowm.model.world import WorldModel, image_metrics

RANDOM_SEQUENCES = 64  # random action sequences per goal, for the ranking


def baselines(
    planner: Planner,
    goals: list,
    g: Tensor,
    gen: torch.Generator,
    true_obj: Tensor,
    action_shape: torch.Size,
    goal_offset: int,
) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """Each goal's true and random actions' objectives, and how the objective ranks them;
    a goal frame is `goal_offset` timesteps after its start."""
    rand = torch.randn(
        len(goals) * RANDOM_SEQUENCES,
        *action_shape,
        generator=gen,
        device=g.device,
    )
    rand_obj = planner.score(rand, g.repeat_interleave(RANDOM_SEQUENCES)).view(len(goals), -1)
    per_goal: list[dict[str, Any]] = [
        {
            "episode": ep,
            "start": s,
            "goal": s + goal_offset,
            "true_objective": float(true_obj[i]),
            "random_objective": float(rand_obj[i].mean()),
        }
        for i, (ep, s, _) in enumerate(goals)
    ]
    metrics: dict[str, float | None] = {
        "true_objective": float(true_obj.mean()),
        "random_objective": float(rand_obj.mean()),
        "rank_true_vs_random": float((rand_obj > true_obj[:, None]).float().mean()),
    }
    return per_goal, metrics


def planned(
    planner: Planner,
    p: str,
    horizon: int,
    request: dict[str, Any],
    gen: torch.Generator,
    progress: Callable[[str], None],
) -> Tensor:
    """The actions planner `p` (cem or gd) plans for every goal, with progress."""
    if p == "cem":
        return planner.cem(
            horizon,
            CemSettings(**request["cem"]),
            gen,
            lambda i: progress(f"CEM iteration {i}"),
        )
    return planner.gd(
        horizon,
        GdSettings(**request["gd"]),
        gen,
        lambda i: progress(f"gradient step {i}"),
    )


def judge(
    model: WorldModel,
    planner: Planner,
    p: str,
    actions: Tensor,
    true_actions: Tensor,
    goal: dict[str, Tensor],
    true_obj: Tensor,
    per_goal: list[dict[str, Any]],
    metrics: dict[str, float | None],
    seconds: float,
) -> Tensor | None:
    """Planner p's result per goal and on average; the imagined final frames (G, 1, 3,
    img, img), None without a decoder (no picture, no image metrics)."""
    g = torch.arange(len(per_goal), device=actions.device)
    with torch.no_grad():
        z = planner.final(actions, g)  # (G, 1, P, D)
        objective = planner.distance(z, g)
        visual_dist = planner.visual_distance(z, g)
        decoded = model.decode(z).float() if model.has_decoder else None
    action_err = (actions.float() - true_actions.float()).pow(2).flatten(1).mean(1)
    for i, one in enumerate(per_goal):
        img: dict[str, float | None] = (
            dict.fromkeys(("mse", "psnr", "ssim"))
            if decoded is None
            else {
                k.split("_")[1]: float(v)
                for k, v in image_metrics(
                    decoded[i : i + 1], goal["visual"][i : i + 1].float(), "x"
                ).items()
            }
        )
        one[p] = {
            "objective": float(objective[i]),
            "action_err": float(action_err[i]),
            "z_visual_dist": float(visual_dist[i]),
            **{k: img[k] for k in ("mse", "psnr", "ssim")},
        }
    metrics[f"{p}_objective"] = float(objective.mean())
    metrics[f"{p}_oracle_ratio"] = float(objective.mean() / true_obj.mean().clamp_min(1e-12))
    metrics[f"{p}_action_err"] = float(action_err.mean())
    metrics[f"{p}_seconds"] = seconds  # per goal
    for k in ("mse", "psnr", "ssim"):
        metrics[f"{p}_img_{k}"] = (
            None if decoded is None else float(np.mean([o[p][k] for o in per_goal]))
        )
    return decoded

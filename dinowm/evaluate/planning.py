# SPDX-License-Identifier: MIT
"""Planning in latent space toward a goal frame: the objective, CEM and gradient descent.

As the public planner: start from one observed frame, imagine `horizon` steps of actions, and
score the last imagined frame against the goal's latent (MSE of the visual patch tokens plus
alpha times the MSE of the proprio embedding). CEM here plans every goal at once: all goals'
samples of an iteration go through the model together (in chunks of at most `max_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dinowm.model.rollouts import imagine
from dinowm.model.world import WorldModel


@dataclass(frozen=True)
class CemSettings:
    """The public CEM planner's defaults (planning/cem.py, conf/planner/cem.yaml)."""

    samples: int = 300
    topk: int = 30
    iterations: int = 30
    var_scale: float = 1.0


@dataclass(frozen=True)
class GdSettings:
    """The public gradient-descent planner's defaults (SGD on the actions, noise after each
    step)."""

    steps: int = 1000
    lr: float = 1.0
    noise: float = 0.003


class Planner:
    """Imagines action sequences from start frames and scores them against goal latents."""

    def __init__(
        self,
        model: WorldModel,
        start: dict[str, Tensor],
        goal: dict[str, Tensor],
        alpha: float = 1.0,
        max_batch: int = 4096,
    ) -> None:
        # start/goal: {"visual" (G, 1, 3, img, img), "proprio" (G, 1, P)} on the model's device
        self.model, self.alpha, self.max_batch = model, alpha, max_batch
        with torch.no_grad():
            self.tokens = model.encode_visual(start["visual"])  # (G, 1, P, D_vis)
            dummy = torch.zeros(
                *goal["proprio"].shape[:2],
                model.action_encoder.proj.in_channels,
                device=goal["proprio"].device,
            )
            self.z_goal = model.encode(goal["visual"], goal["proprio"], dummy)  # (G, 1, P, D)
        self.proprio = start["proprio"]  # (G, 1, P)

    def final(self, actions: Tensor, goals: Tensor) -> Tensor:
        """The last imagined latent (N, 1, P, D) of actions (N, H, A) from the starts of `goals`."""
        # the start frame's tokens are encoded once; its action channels are each sequence's own
        z = self.model.encode(
            None,
            self.proprio[goals],
            actions[:, :1],
            tokens=self.tokens[goals],
        )  # (N, 1, P, D)
        last = z
        for z_step in imagine(self.model, z, actions, actions.shape[1]):
            last = z_step
        return last

    def objective(self, actions: Tensor, goals: Tensor) -> Tensor:
        """(N,) final latent distance to each goal: visual MSE + alpha x proprio MSE."""
        z = self.final(actions, goals)
        return self.distance(z, goals)

    def distance(self, z: Tensor, goals: Tensor) -> Tensor:
        """(N,) the objective of final latents z (N, 1, P, D) against goals (N,)."""
        m, g = self.model, self.z_goal[goals]
        v, p = m.visual_dim, m.visual_dim + m.proprio_emb_dim
        visual = (z[..., :v].float() - g[..., :v].float()).pow(2).flatten(1).mean(1)
        proprio = (z[:, :, 0, v:p].float() - g[:, :, 0, v:p].float()).pow(2).flatten(1).mean(1)
        return visual + self.alpha * proprio

    def visual_distance(self, z: Tensor, goals: Tensor) -> Tensor:
        """(N,) the visual part alone (the frozen encoder's space: comparable across models)."""
        v = self.model.visual_dim
        return (z[..., :v].float() - self.z_goal[goals][..., :v].float()).pow(2).flatten(1).mean(1)

    @torch.no_grad()
    def score(self, actions: Tensor, goals: Tensor) -> Tensor:
        """objective() without autograd, in chunks of at most max_batch sequences."""
        return torch.cat(
            [
                self.objective(actions[i : i + self.max_batch], goals[i : i + self.max_batch])
                for i in range(0, actions.shape[0], self.max_batch)
            ]
        )

    @torch.no_grad()
    def cem(
        self,
        horizon: int,
        s: CemSettings,
        generator: torch.Generator,
        on_iteration: Callable[[int], None] | None = None,
    ) -> Tensor:
        """CEM for every goal at once -> planned actions (G, H, A), normalised.

        Each iteration samples `samples` sequences per goal around mu (the first one is mu
        itself), keeps the topk lowest objectives and refits mu and sigma to them.
        """
        n_goals, dim = self.tokens.shape[0], self.model.action_encoder.proj.in_channels
        device = self.tokens.device
        mu = torch.zeros(n_goals, horizon, dim, device=device)
        sigma = s.var_scale * torch.ones(n_goals, horizon, dim, device=device)
        goals = torch.arange(n_goals, device=device).repeat_interleave(s.samples)  # (G*S,)
        for i in range(s.iterations):
            noise = torch.randn(
                n_goals, s.samples, horizon, dim, generator=generator, device=device
            )
            actions = noise * sigma[:, None] + mu[:, None]  # (G, S, H, A)
            actions[:, 0] = mu
            loss = self.score(actions.flatten(0, 1), goals).view(n_goals, s.samples)
            top = loss.argsort(dim=1)[:, : s.topk]  # (G, topk)
            best = torch.gather(actions, 1, top[..., None, None].expand(-1, -1, horizon, dim))
            mu, sigma = best.mean(dim=1), best.std(dim=1)
            if on_iteration:
                on_iteration(i + 1)
        return mu

    def gd(
        self,
        horizon: int,
        s: GdSettings,
        generator: torch.Generator,
        on_step: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Gradient descent on the actions of every goal (SGD, Gaussian noise after each step)."""
        n_goals, dim = self.tokens.shape[0], self.model.action_encoder.proj.in_channels
        device = self.tokens.device
        goals = torch.arange(n_goals, device=device)
        actions = torch.randn(n_goals, horizon, dim, generator=generator, device=device)
        actions.requires_grad_(True)
        for i in range(s.steps):
            loss = self.objective(actions, goals).sum()  # each goal's loss is independent
            (grad,) = torch.autograd.grad(loss, actions)
            with torch.no_grad():
                actions -= s.lr * grad
                actions += torch.randn(actions.shape, generator=generator, device=device) * s.noise
            if on_step:
                on_step(i + 1)
        return actions.detach()

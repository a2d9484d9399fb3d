# SPDX-License-Identifier: MIT
"""One optimiser step: forward, losses, backward, the decoder's schedule, the optimiser step.

The training loop, `dinowm bench` and its profile all call `train_step`; the profile passes a
`mark` that synchronises the device and times each part of this same code, and splits the
backward in two (the decoder sees detached latents only, so backpropagating z_loss and the
reconstruction loss one after the other gives the gradients of their sum's one backward).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dinowm.model.world import WorldModel
from dinowm.train.device import autocast, batch_to_device, tokens_to_device
from dinowm.train.dist import Dist

Batch = dict[str, Tensor]
Optimizers = dict[str, torch.optim.Optimizer]
Mark = Callable[[str], None]


def no_mark(part: str) -> None:
    """Training times no part of its steps."""


class Sums(Protocol):
    """Where a step adds each micro-batch's scalar outputs (train.state.Accum)."""

    def add(self, out: dict[str, Tensor], n: int, skip: tuple[str, ...] = ()) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """Which optimiser steps (0-based, counted over the whole run, so a resume keeps the
    schedule) decode predicted frames for metrics, and which train the decoder."""

    has_decoder: bool  # model.decoder=off builds none: nothing is decoded
    decode_every: int  # decode the predicted frames (a metric only) every N-th step
    decoder_every: int  # train the decoder every N-th step (training.decoder_every)
    keep_pred_graph: bool  # reference mode: the public code's unused decode graph kept alive

    def decodes_predictions(self, step: int) -> bool:
        """Whether optimiser step `step` decodes the predicted frames."""
        return self.has_decoder and step % self.decode_every == 0

    def trains_decoder(self, step: int) -> bool:
        """Whether optimiser step `step` trains the decoder."""
        return self.has_decoder and step % self.decoder_every == 0


@dataclass
class Stepper:
    """What every step of a training uses: the model (`net`: DDP around it with several
    ranks), its optimisers and schedule, the device, and what one step hands the next."""

    net: nn.Module
    model: WorldModel
    optimizers: Optimizers
    schedule: Schedule
    device: torch.device
    img_size: int
    precision: str  # autocast: bf16 or fp32
    dist: Dist | None = None  # the loop's ranks; None in a bench trial
    # the last outputs, alive through the next step's forward as the public code's variables
    # are (reference mode: its unused decode graph), and the last decoder step's recon loss
    out: dict[str, Tensor] = field(default_factory=dict)
    last_recon: float = 0.0


def train_step(
    s: Stepper,
    group: Sequence[Batch],
    step: int,
    *,
    n: int | None = None,
    standin: bool = False,
    sums: Sums | None = None,
    mark: Mark = no_mark,
    split_backward: bool = False,
) -> float:
    """Optimiser step `step` over the micro-batches of `group`; returns the live loss.

    `n` counts the step's samples over all ranks (the loss is their mean; default: the
    group's); a `standin` group holds a sample of no share (loss weight 0) so that this rank
    takes part in the gradient all-reduce. Each micro-batch's scalars go to `sums`.
    """
    trains_decoder = s.schedule.trains_decoder(step)
    full_loss = trains_decoder or not s.model.has_decoder  # else z_loss alone
    n = n if n is not None else sum(int(b["visual"].shape[0]) for b in group)
    for opt in s.optimizers.values():
        opt.zero_grad(set_to_none=True)
    mark("optimizer")
    out: dict[str, Tensor] = {}
    for i, micro in enumerate(group):
        last = i == len(group) - 1  # DDP all-reduces the gradients in this backward
        out, b = _forward_backward(s, micro, step, n, standin, last, mark, split_backward)
        if not standin and sums is not None:  # a step without the decoder has no full loss
            sums.add(out, b, skip=() if full_loss else ("loss",))
    step_optimizers(s.optimizers, trains_decoder)
    mark("optimizer")
    if trains_decoder:
        s.last_recon = out["decoder_recon_loss_reconstructed"].item()
    return out["loss"].item() if full_loss else out["z_loss"].item() + s.last_recon


def _forward_backward(
    s: Stepper,
    micro: Batch,
    step: int,
    n: int,
    standin: bool,
    last: bool,
    mark: Mark,
    split_backward: bool,
) -> tuple[dict[str, Tensor], int]:
    """One micro-batch to the device, forward and backward (gradients accumulate; DDP reduces
    them in the last one's); its outputs and size."""
    distributed = s.dist is not None and s.dist.enabled
    # visual (b, F, 3, img, img) in [-1, 1], proprio (b, F, P), action (b, F, fs*A)
    visual, proprio, action = batch_to_device(micro, s.device, s.img_size)
    tokens = tokens_to_device(micro, s.device)
    mark("h2d_copy")
    decode = s.schedule.decodes_predictions(step)
    no_sync = (
        cast(DistributedDataParallel, s.net).no_sync()
        if distributed and not last
        else contextlib.nullcontext()
    )
    with no_sync:
        with autocast(s.device, s.precision):
            s.out = s.net(
                visual,
                proprio,
                action,
                decode_pred=decode,
                image_metrics_on=decode,
                tokens=tokens,
                keep_pred_graph=s.schedule.keep_pred_graph,
                reconstruct=s.schedule.trains_decoder(step),
                mark=mark,
                split_loss=split_backward,
            )
        # The mean over all n samples: DDP averages over ranks, hence x world; a stand-in
        # sample (no share of this step) adds nothing.
        world = s.dist.world if s.dist is not None and distributed else 1
        weight = 0.0 if standin else visual.shape[0] * world / n
        reduce = (
            s.dist.collective("grad_allreduce")
            if s.dist is not None and last
            else contextlib.nullcontext()
        )
        with reduce:
            _backward(s.out, weight, mark)
    return s.out, int(visual.shape[0])


def _backward(out: dict[str, Tensor], weight: float, mark: Mark) -> None:
    """The weighted loss's backward; in two (z_loss, then the reconstruction loss) when the
    forward returned them apart (a profile's split_backward)."""
    z_loss, recon_loss = out.pop("_z_loss", None), out.pop("_recon_loss", None)
    if z_loss is None:
        (out["loss"] * weight).backward()
        mark("backward")
        return
    (z_loss * weight).backward()
    mark("predictor_backward")
    if recon_loss is not None:
        (recon_loss * weight).backward()
    mark("decoder_backward")


def step_optimizers(optimizers: Optimizers, trains_decoder: bool) -> None:
    """One optimiser step of every part; the decoder's only on a step that trained it
    (training.decoder_every), so that its Adam counts the steps it learnt from."""
    for name, opt in optimizers.items():
        if name != "decoder" or trains_decoder:
            opt.step()

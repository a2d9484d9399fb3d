# SPDX-License-Identifier: MIT
"""An epoch's validation: the val split's mean metrics and the first batch's images, and the
public open-loop rollout metrics of a few trajectories per split."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from dinowm.data.datasets import SliceDataset, split_order
from dinowm.model.rollouts import public_picks, rollout_errors
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train.mode import Mode
from dinowm.train.runtime import Runtime
from dinowm.train.state import Accum, reduce_accum


def validate(
    model: WorldModel, loader: DataLoader, rt: Runtime, cfg: RunConfig, mode: Mode
) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
    """Mean val metrics over the whole val split, and the first batch's images for the grid.

    Reference mode keeps autograd on and the previous batch's outputs alive, as the public
    code does.
    """
    model.eval()
    accum, images = Accum(), None
    autocast = rt.autocast(mode.precision)
    for i, micro in enumerate(loader):
        visual, proprio, action = rt.to_device(micro, cfg.model.img_size)
        with autocast, mode.validation_grad():
            out = model(
                visual,
                proprio,
                action,
                decode_pred=True,
                return_images=i == 0,
                tokens=rt.tokens(micro),
                keep_pred_graph=mode.keep_pred_graph,
            )
        if i == 0 and "visual_reconstructed" in out:  # none without a decoder
            images = {
                "true": visual.float().cpu(),
                "reconstructed": out.pop("visual_reconstructed").float().cpu(),
                "pred": out.pop("visual_pred").float().cpu(),
            }
        accum.add(out, visual.shape[0])
        rt.beat_validation(i)
    model.train()
    return reduce_accum(accum, rt.dist).means("val"), images


@torch.no_grad()
def rollout_metrics(
    model: WorldModel, splits: dict[str, SliceDataset], rt: Runtime, cfg: RunConfig, mode: Mode
) -> dict[str, float]:
    """The public open-loop rollout metrics of each split: training.rollouts trajectories at
    seeded random starts and horizons, num_hist and 1-frame context (rank 0, eval mode)."""
    t, d = cfg.training, cfg.data
    train_order, val_order = split_order(len(splits["train"].lengths), d.split_ratio, d.split_seed)
    metrics: dict[str, float] = {}
    model.eval()
    for split, order in (("train", train_order), ("val", val_order)):
        ds = splits[split]
        picks = public_picks(
            order, ds.lengths, cfg.num_hist, cfg.frameskip, t.rollouts, cfg.seed, t.rollout_horizon
        )
        if not picks:
            continue
        segments = [ds.segment(p.episode, p.start, p.horizon) for p in picks]
        with rt.autocast(mode.precision):
            errs = rollout_errors(
                model,
                segments,
                [p.horizon for p in picks],
                lambda b: rt.to_device(b, cfg.model.img_size),
                contexts=(cfg.num_hist, 1),
            )
        metrics.update({f"{split}_{k}": v for k, v in errs.items()})
    model.train()
    return metrics

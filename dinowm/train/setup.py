# SPDX-License-Identifier: MIT
"""Everything a training builds before its first step: data, model, optimisers, where a resume
stands, the feature cache, the loaders; in the order that keeps every rank's random streams
and a resumed run's the same as an uninterrupted one's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from dinowm import rundir
from dinowm.config import config_hash, from_dict
from dinowm.data import features
from dinowm.data.datasets import SliceDataset, run_datasets
from dinowm.data.normalize import Stats
from dinowm.data.sampling import EpochSampler, RankBatches, shard_batches
from dinowm.data.synth import ensure_dataset
from dinowm.model.build import build_model
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.train.mode import Mode
from dinowm.train.optim import build_optimizers
from dinowm.train.resume import latest_checkpoint, restore
from dinowm.train.runtime import Runtime
from dinowm.train.state import TrainState, rank_accum, seed_everything
from dinowm.train.step import Optimizers, Stepper


@dataclass
class Training:
    """A training's parts, built once per trainer process."""

    cfg: RunConfig
    mode: Mode
    model: WorldModel
    stepper: Stepper  # the model (DDP around it with several ranks), optimisers, schedule
    stats: Stats
    state: TrainState
    train_ds: SliceDataset
    val_ds: SliceDataset
    sampler: EpochSampler
    plan: RankBatches
    loader: DataLoader
    val_loader: DataLoader
    steps_per_epoch: int

    @property
    def optimizers(self) -> Optimizers:
        return self.stepper.optimizers


def set_up(rt: Runtime, run_dir: Path) -> Training:
    """Data, model, optimisers and loaders of the run, restored to where its latest
    checkpoint stood; announces the attempt (its start event)."""
    cfg: RunConfig = from_dict(rt.spec["config"])
    mode = Mode.of(cfg)
    rt.phase("startup", epoch=None)
    swept, resumed = _where_it_stands(rt, cfg, run_dir)
    train_ds, val_ds, stats, info = _datasets(rt, cfg, mode, resumed)
    model, optimizers, state = _model(rt, cfg, mode, info, resumed)
    cached = _feature_cache(rt, cfg, mode, model, train_ds, val_ds, run_dir)
    training = _loaders(rt, cfg, mode, model, optimizers, stats, state, train_ds, val_ds)
    rt.start(
        attempt_epoch=state.epoch,
        step=state.step,
        batches_per_epoch=training.steps_per_epoch,
        batch_size=cfg.training.batch_size,
        grad_accum=cfg.training.grad_accum,
        micro_batch=cfg.micro_batch,
        train_samples=len(train_ds),
        val_samples=len(val_ds),
        params=model.parameter_counts(),
        encoder_label=model.encoder.label,
        dataset=info,
        config_hash=config_hash(cfg),
        resumed_from=str(resumed.path) if resumed else None,
        swept_temp_files=swept,
        stats_from=mode.stats_from,
        shuffle=mode.shuffle,
        decoder=model.has_decoder,
        decoder_every=mode.decoder_every,
        feature_cache=cached,
    )
    return training


def _where_it_stands(
    rt: Runtime, cfg: RunConfig, run_dir: Path
) -> tuple[list[str], ckpt.Loaded | None]:
    """The dataset generated where it is synthetic, temp files of a killed save swept, and the
    checkpoint to resume (None on a fresh run)."""
    dist = rt.dist
    if dist.is_main:  # rank 0 generates the synthetic dataset (if any) before the others look
        ensure_dataset(cfg)
    dist.barrier("dataset")
    if not dist.is_main:
        ensure_dataset(cfg)
    swept = []
    if dist.is_main:  # left by a kill during a save
        swept = ckpt.sweep_temp_files(run_dir / rundir.CHECKPOINTS)
    return swept, latest_checkpoint(run_dir / rundir.CHECKPOINTS, rt)


def _datasets(
    rt: Runtime, cfg: RunConfig, mode: Mode, resumed: ckpt.Loaded | None
) -> tuple[SliceDataset, SliceDataset, Stats, dict[str, Any]]:
    """The train and val windows, normalised as the run's checkpoint was (a resume keeps its
    normalisation), the same on every rank."""
    train_ds, val_ds, stats, info = run_datasets(
        cfg,
        stats_from=mode.stats_from,
        stats=resumed.state["stats"] if resumed else None,
    )
    for warning in info["warnings"]:
        rt.log(f"data warning: {warning}")
    # Every rank computes the same data, normalisation and resume point from the same files.
    rt.dist.check_same(
        "data",
        [len(train_ds), len(val_ds), stats, resumed and (resumed.path.name, resumed.state["step"])],
    )
    return train_ds, val_ds, stats, info


def _model(
    rt: Runtime, cfg: RunConfig, mode: Mode, info: dict[str, Any], resumed: ckpt.Loaded | None
) -> tuple[WorldModel, Optimizers, TrainState]:
    """The model and its optimisers, seeded the same on every rank, then restored from the
    checkpoint with where it stood."""
    dist, device = rt.dist, rt.device
    seed_everything(cfg.seed)
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"]).to(device)
    mode.prepare(model, device)  # before the optimisers, whose states follow the parameters
    optimizers = build_optimizers(model, cfg, device)
    # The same initial weights on every rank; then each rank its own dropout stream, which
    # starts the same whatever was built (a run without a decoder draws the same dropout masks).
    seed_everything(cfg.seed + dist.rank)
    state = TrainState()
    if resumed:
        restore(resumed, rt.run_id, model, optimizers, dist)  # weights, optimiser, RNG states
        state = TrainState.from_checkpoint(resumed.state)
        if dist.enabled:
            state.accum = rank_accum(resumed.state, state.accum, dist, rt.log)
    return model, optimizers, state


def _feature_cache(
    rt: Runtime,
    cfg: RunConfig,
    mode: Mode,
    model: WorldModel,
    train_ds: SliceDataset,
    val_ds: SliceDataset,
    run_dir: Path,
) -> bool:
    """Read the frozen encoder's tokens from the project's feature cache, where wanted."""
    cache_root = rundir.feature_cache(run_dir)
    cached, why = features.wanted(
        mode.cache_features, model, train_ds, cache_root, rt.device, cfg.data.cache_max_gib
    )
    if mode.cache_features != "off":
        rt.log(f"feature cache: {why}")
    if cached:
        rt.phase("startup", epoch=None)
        features.attach_cache(model, train_ds, val_ds, cache_root, rt.device, rt.log)
    return cached


def _loaders(
    rt: Runtime,
    cfg: RunConfig,
    mode: Mode,
    model: WorldModel,
    optimizers: Optimizers,
    stats: Any,
    state: TrainState,
    train_ds: SliceDataset,
    val_ds: SliceDataset,
) -> Training:
    """The model under DDP, the epoch sampler, this rank's loaders, the step's parts."""
    t, dist = cfg.training, rt.dist
    # DistributedDataParallel with several ranks, else the model; a step that leaves the
    # decoder out (training.decoder_every > 1) gives it no gradient to reduce
    net = dist.wrap(model, unused_parameters=model.has_decoder and mode.decoder_every > 1)
    # one global order per epoch, or the public code's one order for all (shuffle=fixed)
    sampler = EpochSampler(len(train_ds), seed=cfg.seed, order=mode.order(train_ds, cfg.seed))
    plan = RankBatches(sampler, cfg.micro_batch, t.grad_accum, dist.world, dist.rank)
    loader = rt.loader(mode.dataset(train_ds, cfg.model.img_size), batch_sampler=plan)
    if dist.enabled:  # each rank validates its contiguous share of the val set
        val_loader = rt.loader(
            mode.dataset(val_ds, cfg.model.img_size),
            batch_sampler=(shard_batches(len(val_ds), cfg.micro_batch, dist.world, dist.rank)),
        )
    else:
        val_loader = rt.loader(
            mode.dataset(val_ds, cfg.model.img_size), cfg.micro_batch, sampler=None
        )
    steps_per_epoch = math.ceil(len(train_ds) / t.batch_size)
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
    stepper = Stepper(
        net,
        model,
        optimizers,
        mode.schedule(model),
        rt.device,
        cfg.model.img_size,
        mode.precision,
        dist,
    )
    return Training(
        cfg,
        mode,
        model,
        stepper,
        stats,
        state,
        train_ds,
        val_ds,
        sampler,
        plan,
        loader,
        val_loader,
        steps_per_epoch,
    )

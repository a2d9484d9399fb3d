"""The training loop: setup, step, validate, checkpoint, log, top to bottom."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dinowm import rundir
from dinowm.config import config_hash, from_dict
from dinowm.faults import fault
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.train.build import build_model, build_optimizers, seed_everything, step_optimizers
from dinowm.train.data import (EpochSampler, RankBatches, SliceDataset, build_datasets,
                               shard_batches, split_order)
from dinowm.train.dist import Dist
from dinowm.train import features
from dinowm.train.mode import Mode
from dinowm.train.model import WorldModel
from dinowm.train.rollouts import public_picks, rollout_errors
from dinowm.train.resume import latest_checkpoint, rank_state, restore, save
from dinowm.train.runtime import Runtime, ensure_dataset
from dinowm.train.samples import reconstruction_grid


def train(run_dir: Path) -> str:
    """Train the run in `run_dir` up to its target epochs; returns 'completed' or 'stopped'.

    Under torchrun (several ranks) each rank runs this: the global batch is split over the
    ranks (data.plan_steps), gradients are all-reduced by DistributedDataParallel, metrics are
    summed over ranks, and rank 0 alone writes events, checkpoints, samples and train.log.
    """
    rt = Runtime(run_dir)
    status = _train(rt, Path(run_dir))
    rt.dist.close()
    return status


def _train(rt: Runtime, run_dir: Path) -> str:
    cfg: RunConfig = from_dict(rt.spec["config"])
    t, device, mode, dist = cfg.training, rt.device, Mode.of(cfg), rt.dist
    rt.phase("startup", epoch=None)

    # -- setup: data, model, optimisers, and where a resume stands ----------------------------
    if dist.is_main:  # rank 0 generates the synthetic dataset (if any) before the others look
        ensure_dataset(cfg)
    dist.barrier("dataset")
    if not dist.is_main:
        ensure_dataset(cfg)
    swept = []
    if dist.is_main:  # left by a kill during a save
        swept = ckpt.sweep_temp_files(run_dir / rundir.CHECKPOINTS)
    resumed = latest_checkpoint(run_dir / rundir.CHECKPOINTS, rt)  # None on a fresh run
    train_ds, val_ds, stats, info = build_datasets(
        cfg.data.path, layout=cfg.data.layout, n_rollouts=cfg.data.n_rollouts,
        split_ratio=cfg.data.split_ratio, split_seed=cfg.data.split_seed,
        normalize_action=cfg.data.normalize_action, frameskip=cfg.frameskip,
        num_hist=cfg.num_hist, num_pred=cfg.num_pred, stats_from=mode.stats_from,
        stats=resumed.state["stats"] if resumed else None)  # a resume keeps its normalisation
    for warning in info["warnings"]:
        rt.log(f"data warning: {warning}")
    # Every rank computes the same data, normalisation and resume point from the same files.
    dist.check_same("data", [len(train_ds), len(val_ds), stats,
                             resumed and (resumed.path.name, resumed.state["step"])])
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
            state.accum = rank_accum(resumed.state, state.accum, dist, rt)
    cache_root = run_dir.parent / ".feature_cache"
    cached, why = features.wanted(mode.cache_features, model, train_ds, cache_root, device,
                                  cfg.data.cache_max_gib)
    if mode.cache_features != "off":
        rt.log(f"feature cache: {why}")
    if cached:
        rt.phase("startup", epoch=None)
        features.attach_cache(model, train_ds, val_ds, cache_root, device, rt.log)
    # DistributedDataParallel with several ranks, else the model; a step that leaves the
    # decoder out (training.decoder_every > 1) gives it no gradient to reduce
    net = dist.wrap(model, unused_parameters=model.has_decoder and mode.decoder_every > 1)
    # one global order per epoch, or the public code's one order for all (shuffle=fixed)
    sampler = EpochSampler(len(train_ds), seed=cfg.seed, order=mode.order(train_ds, cfg.seed))
    plan = RankBatches(sampler, cfg.micro_batch, t.grad_accum, dist.world, dist.rank)
    loader = rt.loader(mode.dataset(train_ds, cfg.model.img_size), batch_sampler=plan)
    if dist.enabled:  # each rank validates its contiguous share of the val set
        val_loader = rt.loader(mode.dataset(val_ds, cfg.model.img_size), batch_sampler=(
            shard_batches(len(val_ds), cfg.micro_batch, dist.world, dist.rank)))
    else:
        val_loader = rt.loader(mode.dataset(val_ds, cfg.model.img_size), cfg.micro_batch,
                               sampler=None)
    steps_per_epoch = math.ceil(len(train_ds) / t.batch_size)
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
    rt.start(attempt_epoch=state.epoch, step=state.step, batches_per_epoch=steps_per_epoch,
             batch_size=t.batch_size, grad_accum=t.grad_accum, micro_batch=cfg.micro_batch,
             train_samples=len(train_ds), val_samples=len(val_ds),
             params=model.parameter_counts(), encoder_label=model.encoder.label, dataset=info,
             config_hash=config_hash(cfg), resumed_from=str(resumed.path) if resumed else None,
             swept_temp_files=swept, stats_from=mode.stats_from, shuffle=mode.shuffle,
             decoder=model.has_decoder, decoder_every=mode.decoder_every, feature_cache=cached)
    autocast = rt.autocast(mode.precision)
    last_recon = 0.0  # the last decoder step's reconstruction loss, for the live loss

    while state.epoch <= t.epochs:
        # -- train one epoch (a resume starts mid-epoch, after the samples it trained on) -----
        rt.phase("train", epoch=state.epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sampler.set_epoch(state.epoch, min(state.samples, len(train_ds)))
        steps = plan.steps()  # this rank's part of each remaining step of the epoch
        net.train()
        batches = rt.batches(loader, mode.prefetch)
        first_step = state.accum.steps
        epoch_start = time.time() - state.accum.seconds
        for planned in steps:
            if state.accum.steps >= steps_per_epoch:
                break
            # One optimiser step over n samples of all ranks: this rank's share in at most
            # grad_accum micro-batches of b samples each.
            group = [next(batches) for _ in planned.batches]
            tick = time.perf_counter()
            fault("step")
            fault("global_step", at=state.step + 1)
            n = planned.n
            # predicted frames decoded for metrics only; the decoder trained on its schedule
            decode = mode.decodes_predictions(model, state.step)
            trains_decoder = mode.trains_decoder(model, state.step)
            full_loss = trains_decoder or not model.has_decoder  # else z_loss alone
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            for i, micro in enumerate(group):
                last = i == len(group) - 1  # DDP all-reduces the gradients in this backward
                # visual (b, F, 3, img, img) in [-1, 1], proprio (b, F, P), action (b, F, fs*A)
                visual, proprio, action = rt.to_device(micro, cfg.model.img_size)
                with net.no_sync() if dist.enabled and not last else contextlib.nullcontext():
                    # Reference mode: `out` keeps the previous step's unused decode graph alive
                    # through this forward, as the public code's variables do.
                    with autocast:
                        out = net(visual, proprio, action, decode_pred=decode,
                                  image_metrics_on=decode, tokens=rt.tokens(micro),
                                  keep_pred_graph=mode.keep_pred_graph,
                                  reconstruct=trains_decoder)
                    # The mean over all n samples: DDP averages over ranks, hence x world; a
                    # stand-in sample (no share of this step) adds nothing.
                    weight = 0.0 if planned.standin else visual.shape[0] * dist.world / n
                    with dist.collective("grad_allreduce") if last else contextlib.nullcontext():
                        (out["loss"] * weight).backward()
                if not planned.standin:  # a step without the decoder has no full loss
                    state.accum.add(out, visual.shape[0], skip=() if full_loss else ("loss",))
            step_optimizers(optimizers, trains_decoder)
            if trains_decoder:
                last_recon = out["decoder_recon_loss_reconstructed"].item()
            live_loss = out["loss"].item() if full_loss else out["z_loss"].item() + last_recon
            state.step += 1
            state.samples += n
            state.accum.steps += 1
            state.accum.seconds = time.time() - epoch_start
            rt.heartbeat(epoch=state.epoch, batch=state.accum.steps, batches=steps_per_epoch,
                         step=state.step, loss=live_loss,
                         step_s=time.perf_counter() - tick, samples=n,
                         remaining=(t.epochs - state.epoch + 1) * steps_per_epoch
                         - state.accum.steps)
            if rt.stop_now():  # with several ranks: any rank's SIGTERM, agreed by all
                save(rt, cfg, model, optimizers, stats, state.checkpoint(), kind="latest")
                rt.end("stopped", epoch=state.epoch - 1, step=state.step)
                return "stopped"
            rt.wait_while_paused()
        train_seconds = time.time() - epoch_start

        # -- validation, rollout, reconstructions -------------------------------------------
        rt.phase("validation", epoch=state.epoch)
        fault("validation")
        val, images = validate(model, val_loader, rt, cfg, mode)
        epoch_sums = reduce_accum(state.accum, dist)  # every rank's samples
        metrics = {**epoch_sums.means("train"), **val}
        if t.rollouts and dist.is_main:  # a few trajectories per split: rank 0 alone
            metrics.update(rollout_metrics(model, {"train": train_ds, "val": val_ds}, rt, cfg,
                                           mode))
        if t.num_reconstruct_samples and images is not None and dist.is_main:
            path = reconstruction_grid(images, run_dir / rundir.SAMPLES, state.epoch,
                                       t.num_reconstruct_samples)
            metrics["samples_path"] = str(path)
        rt.emit_epoch(epoch=state.epoch, metrics=metrics, started_at=epoch_start,
                      ended_at=time.time(), steps=state.accum.steps,
                      samples=epoch_sums.samples, train_seconds=train_seconds,
                      batch_size=t.batch_size, resumed_at_step=first_step)

        # -- checkpoint -----------------------------------------------------------------------
        done = state.epoch
        state.next_epoch()
        stop = rt.stop_now()
        if done % t.save_every_x_epoch == 0 or done == t.epochs or stop:
            rt.phase("checkpoint", epoch=done)
            save(rt, cfg, model, optimizers, stats, state.checkpoint(), kind="epoch")
            dist.barrier("checkpoint_written")
        # (one rank reads its flag again); a stop during the last epoch's validation comes
        # too late to stop anything: the run is complete
        if (stop if dist.enabled else rt.stop_requested) and done < t.epochs:
            rt.end("stopped", epoch=done, step=state.step)
            return "stopped"
    rt.end("completed", epoch=t.epochs, step=state.step)
    return "completed"


def validate(model: WorldModel, loader: DataLoader, rt: Runtime, cfg: RunConfig,
             mode: Mode) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
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
            out = model(visual, proprio, action, decode_pred=True, return_images=i == 0,
                        tokens=rt.tokens(micro), keep_pred_graph=mode.keep_pred_graph)
        if i == 0 and "visual_reconstructed" in out:  # none without a decoder
            images = {"true": visual.float().cpu(),
                      "reconstructed": out.pop("visual_reconstructed").float().cpu(),
                      "pred": out.pop("visual_pred").float().cpu()}
        accum.add(out, visual.shape[0])
        rt.beat_validation(i)
    model.train()
    return reduce_accum(accum, rt.dist).means("val"), images


def reduce_accum(accum: Accum, dist: Dist) -> Accum:
    """The sums of every rank's samples (all-reduced sums and counts, never means of means);
    `accum` itself with one rank."""
    if not dist.enabled:
        return accum
    keys = sorted(set().union(*dist.all_gather_object(sorted(accum.sums), "metric_keys")))
    sums = dist.sum([accum.sums.get(k, 0.0) for k in keys]
                    + [float(accum.weights.get(k, 0)) for k in keys] + [float(accum.samples)],
                    "metric_sums")
    total = Accum({"steps": accum.steps, "seconds": accum.seconds, "samples": int(sums[-1])})
    total.sums = dict(zip(keys, sums[: len(keys)]))
    total.weights = {k: int(w) for k, w in zip(keys, sums[len(keys) : 2 * len(keys)])}
    return total


def rank_accum(saved: dict[str, Any], accum: Accum, dist: Dist, rt: Runtime) -> Accum:
    """This rank's metric sums of the epoch a checkpoint stopped in.

    A checkpoint of as many ranks has each one's; one of another rank count (nproc_per_node
    changed) has them summed, which rank 0 takes over (epoch metrics stay right, each other
    rank's dropout stream then starts from rank 0's saved one).
    """
    own = rank_state(saved, dist)
    if own is not None:
        return Accum(own["accum"])
    rt.log(f"checkpoint of {len(saved.get('ranks') or [None])} rank(s) resumed by "
           f"{dist.world}: RNG streams are not continued exactly")
    return accum if dist.is_main else Accum({"steps": accum.steps, "seconds": accum.seconds})


@torch.no_grad()
def rollout_metrics(model: WorldModel, splits: dict[str, SliceDataset], rt: Runtime,
                    cfg: RunConfig, mode: Mode) -> dict[str, float]:
    """The public open-loop rollout metrics of each split: training.rollouts trajectories at
    seeded random starts and horizons, num_hist and 1-frame context (rank 0, eval mode)."""
    t, d = cfg.training, cfg.data
    train_order, val_order = split_order(len(splits["train"].lengths), d.split_ratio,
                                         d.split_seed)
    metrics: dict[str, float] = {}
    model.eval()
    for split, order in (("train", train_order), ("val", val_order)):
        ds = splits[split]
        picks = public_picks(order, ds.lengths, cfg.num_hist, cfg.frameskip, t.rollouts,
                             cfg.seed, t.rollout_horizon)
        if not picks:
            continue
        segments = [ds.segment(p.episode, p.start, p.horizon) for p in picks]
        with rt.autocast(mode.precision):
            errs = rollout_errors(model, segments, [p.horizon for p in picks],
                                  lambda b: rt.to_device(b, cfg.model.img_size),
                                  contexts=(cfg.num_hist, 1))
        metrics.update({f"{split}_{k}": v for k, v in errs.items()})
    model.train()
    return metrics


class Accum:
    """Sample-weighted running sums of an epoch's metrics (restored on a mid-epoch resume)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.weights: dict[str, int] = dict(state.get("weights", {}))
        self.steps: int = state.get("steps", 0)
        self.samples: int = state.get("samples", 0)
        self.seconds: float = state.get("seconds", 0.0)

    def add(self, out: dict[str, torch.Tensor], n: int, skip: tuple[str, ...] = ()) -> None:
        """Add the scalar outputs of a forward pass over `n` samples (but the keys in skip)."""
        for key, value in out.items():
            if value.dim() == 0 and key not in skip:
                self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
                self.weights[key] = self.weights.get(key, 0) + n
        self.samples += n

    def means(self, prefix: str) -> dict[str, float]:
        """Sample-weighted means, keys as `{prefix}_{metric}`, sorted."""
        return {f"{prefix}_{k}": self.sums[k] / self.weights[k] for k in sorted(self.sums)}

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores under "accum"."""
        return {"sums": self.sums, "weights": self.weights, "steps": self.steps,
                "samples": self.samples, "seconds": self.seconds}


@dataclass
class TrainState:
    """The counters a checkpoint carries besides weights, optimiser and RNG states."""

    epoch: int = 1  # the epoch being trained, 1-based
    step: int = 0  # optimiser steps since the run began
    samples: int = 0  # samples of this epoch already trained on (a resume skips them)
    accum: Accum = field(default_factory=Accum)  # this epoch's metric sums, steps and seconds

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> TrainState:
        """Where a checkpoint stood."""
        return cls(epoch=saved["epoch"], step=saved["step"], samples=saved["samples_done"],
                   accum=Accum(saved["accum"]))

    def checkpoint(self) -> dict[str, Any]:
        """The counters under a checkpoint's keys (format 1)."""
        return {"epoch": self.epoch, "samples_done": self.samples, "step": self.step,
                "accum": self.accum.state()}

    def next_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch, self.samples, self.accum = self.epoch + 1, 0, Accum()

"""The training loop: setup, step, validate, checkpoint, log, top to bottom."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from dinowm import rundir
from dinowm.config import config_hash, from_dict, to_dict
from dinowm.errors import ConfigError
from dinowm.faults import fault
from dinowm.train import checkpoint as ckpt
from dinowm.train.build import (build_model, build_optimizers, load_model_state, model_state,
                                rng_state, seed_everything, set_rng_state)
from dinowm.train.data import EpochSampler, ReferenceDataset, build_datasets
from dinowm.train.runtime import Runtime, ensure_dataset
from dinowm.train.samples import reconstruction_grid

TRAIN_DECODE_EVERY = 10  # predicted-frame decode (a metric only) on every 10th training step


def train(run_dir: Path) -> str:
    """Train the run in `run_dir` up to its target epochs; returns 'completed' or 'stopped'."""
    rt = Runtime(run_dir)
    spec = rt.spec
    cfg = from_dict(spec["config"])
    t = cfg.training
    device = rt.device
    rt.phase("startup", epoch=None)

    # -- data and model ---------------------------------------------------------------------
    ensure_dataset(cfg)
    folder = run_dir / rundir.CHECKPOINTS
    swept = ckpt.sweep_temp_files(folder)
    resumed = ckpt.load_latest(folder)
    for name, reason in (resumed.skipped if resumed else []):
        rt.incident("checkpoint_skipped", f"{name} unusable, fell back: {reason}")
    state = resumed.state if resumed else None
    train_ds, val_ds, stats, info = build_datasets(
        cfg.data.path, layout=cfg.data.layout, n_rollouts=cfg.data.n_rollouts,
        split_ratio=cfg.data.split_ratio, split_seed=cfg.data.split_seed,
        normalize_action=cfg.data.normalize_action, frameskip=cfg.frameskip,
        num_hist=cfg.num_hist, num_pred=cfg.num_pred, stats=state["stats"] if state else None)
    for warning in info["warnings"]:
        rt.log(f"data warning: {warning}")
    seed_everything(cfg.seed)
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"]).to(device)
    optimizers = build_optimizers(model, cfg, device)
    epoch, samples_done, step, accum = 1, 0, 0, _Accum()
    if state is not None:
        try:
            if state.get("run_id") != rt.run_id:
                raise ValueError(f"it belongs to run {state.get('run_id')}")
            load_model_state(model, state["model"])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optim"][name])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ConfigError(f"Checkpoint {resumed.path} does not fit this run "
                              f"({str(exc).splitlines()[0][:160]}); restore the run's "
                              f"config.json or start a new run.") from None
        epoch, samples_done, step = state["epoch"], state["samples_done"], state["step"]
        accum = _Accum(state["accum"])
        set_rng_state(state["rng"])
    reference = cfg.perf.mode == "reference"
    setup_speed(model, cfg, device)
    if cfg.data.cache_features and not reference:
        rt.phase("startup", epoch=None)
        from dinowm.train.features import TokenStore, build_cache

        cache_dir = build_cache(model, train_ds, run_dir.parent / ".feature_cache", device,
                                progress=lambda i, n: rt.log(f"feature cache: episode {i}/{n}"))
        train_ds.tokens = val_ds.tokens = TokenStore(cache_dir)
        rt.log(f"feature cache: {cache_dir}")

    sampler = EpochSampler(len(train_ds), seed=cfg.seed)
    loader = rt.loader(ReferenceDataset(train_ds, cfg.model.img_size) if reference else train_ds,
                       cfg.micro_batch, sampler=sampler)
    val_loader = rt.loader(ReferenceDataset(val_ds, cfg.model.img_size) if reference else val_ds,
                           cfg.micro_batch, sampler=None)
    steps_per_epoch = math.ceil(len(train_ds) / t.batch_size)
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
    counts = model.parameter_counts()
    rt.start(attempt_epoch=epoch, step=step, batches_per_epoch=steps_per_epoch,
             batch_size=t.batch_size, grad_accum=t.grad_accum, micro_batch=cfg.micro_batch,
             train_samples=len(train_ds), val_samples=len(val_ds), params=counts,
             encoder_label=model.encoder.label, dataset=info, config_hash=config_hash(cfg),
             resumed_from=str(resumed.path) if resumed else None, swept_temp_files=swept)
    # Reference mode: `out` keeps the previous step's unused decode graph alive through the next
    # forward, as the public code's variables do; the fast path never builds that graph.
    autocast = rt.autocast("fp32" if reference else t.precision)

    # -- epochs -----------------------------------------------------------------------------
    while epoch <= t.epochs:
        rt.phase("train", epoch=epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sampler.set_epoch(epoch, min(samples_done, len(train_ds)))
        model.train()
        batches = iter(loader)
        first_step = accum.steps
        epoch_start = time.time() - accum.seconds
        while accum.steps < steps_per_epoch:
            group = [b for _, b in zip(range(t.grad_accum), batches)]
            if not group:
                break
            tick = time.perf_counter()
            fault("step")
            fault("global_step", at=step + 1)
            n = sum(b["visual"].shape[0] for b in group)
            decode = reference or (step % TRAIN_DECODE_EVERY) == 0
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            for micro in group:
                visual, proprio, action = rt.to_device(micro, cfg.model.img_size)
                with autocast:
                    out = model(visual, proprio, action, decode_pred=decode,
                                image_metrics_on=decode, tokens=rt.tokens(micro),
                                keep_pred_graph=reference)
                (out["loss"] * (visual.shape[0] / n)).backward()
                accum.add(out, visual.shape[0])
            for opt in optimizers.values():
                opt.step()
            step += 1
            samples_done += n
            accum.steps += 1
            accum.seconds = time.time() - epoch_start
            rt.heartbeat(epoch=epoch, batch=accum.steps, batches=steps_per_epoch, step=step,
                         loss=out["loss"].item(), step_s=time.perf_counter() - tick, samples=n,
                         remaining=(t.epochs - epoch) * steps_per_epoch + steps_per_epoch
                         - accum.steps)
            if rt.stop_requested:
                _save(rt, folder, cfg, model, optimizers, stats, epoch, samples_done, step,
                      accum, kind="latest")
                rt.end("stopped", epoch=epoch - 1, step=step)
                return "stopped"
            rt.wait_while_paused()
        train_seconds = time.time() - epoch_start

        # -- validation, rollout, reconstructions -------------------------------------------
        rt.phase("validation", epoch=epoch)
        fault("validation")
        val, images = validate(model, val_loader, rt, cfg)
        metrics = {**accum.means("train"), **val}
        if t.rollout_horizon and len(val_ds):
            metrics.update(rollout_metrics(model, val_ds, rt, cfg))
        if t.num_reconstruct_samples and images is not None:
            path = reconstruction_grid(images, run_dir / rundir.SAMPLES, epoch,
                                       t.num_reconstruct_samples)
            metrics["samples_path"] = str(path)
        epoch_end = time.time()
        rt.emit_epoch(epoch=epoch, metrics=metrics, started_at=epoch_start, ended_at=epoch_end,
                      steps=accum.steps, samples=accum.samples, train_seconds=train_seconds,
                      batch_size=t.batch_size, resumed_at_step=first_step)

        # -- checkpoint -----------------------------------------------------------------------
        epoch, samples_done, accum = epoch + 1, 0, _Accum()
        if (epoch - 1) % t.save_every_x_epoch == 0 or epoch > t.epochs or rt.stop_requested:
            rt.phase("checkpoint", epoch=epoch - 1)
            _save(rt, folder, cfg, model, optimizers, stats, epoch, 0, step, accum, kind="epoch")
        if rt.stop_requested:
            rt.end("stopped", epoch=epoch - 1, step=step)
            return "stopped"
    rt.end("completed", epoch=t.epochs, step=step)
    return "completed"


def validate(model: torch.nn.Module, loader: Any, rt: Runtime,
             cfg: Any) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
    """Mean val metrics over the whole val split, and the first batch's images for the grid.

    Fast mode runs under no_grad; reference mode keeps autograd on and the previous batch's
    outputs alive, as the public code does.
    """
    model.eval()
    accum, images = _Accum(), None
    reference = cfg.perf.mode == "reference"
    autocast = rt.autocast("fp32" if reference else cfg.training.precision)
    grad = torch.enable_grad() if reference else torch.no_grad()
    for i, micro in enumerate(loader):
        visual, proprio, action = rt.to_device(micro, cfg.model.img_size)
        with autocast, grad:
            out = model(visual, proprio, action, decode_pred=True, return_images=i == 0,
                        tokens=rt.tokens(micro), keep_pred_graph=reference)
        if i == 0:
            images = {"true": visual.float().cpu(),
                      "reconstructed": out.pop("visual_reconstructed").float().cpu(),
                      "pred": out.pop("visual_pred").float().cpu()}
        accum.add(out, visual.shape[0])
        rt.beat_validation(i)
    model.train()
    return accum.means("val"), images


@torch.no_grad()
def rollout_metrics(model: torch.nn.Module, val_ds: Any, rt: Runtime, cfg: Any,
                    max_sequences: int = 8) -> dict[str, float]:
    """Open-loop rollout error over a few val windows long enough for the horizon (bounded)."""
    horizon = cfg.training.rollout_horizon
    frames = cfg.num_hist + horizon
    span = frames * cfg.frameskip
    windows = []
    for ep in val_ds.episodes:
        if val_ds.lengths[ep] >= span:
            windows.append(val_ds.window(ep, 0, frames))
        if len(windows) == max_sequences:
            break
    if not windows:
        return {}
    batch = {k: torch.stack([w[k] for w in windows]) for k in windows[0]}
    visual, proprio, action = rt.to_device(batch, cfg.model.img_size)
    model.eval()
    with rt.autocast("fp32" if cfg.perf.mode == "reference" else cfg.training.precision):
        errs = model.rollout_error(visual, proprio, action, horizon)
    model.train()
    return {f"val_{k}": float(v) for k, v in errs.items()}


def setup_speed(model: Any, cfg: Any, device: torch.device) -> None:
    """Fast path settings (channels-last decoder, torch.compile) or the reference costs."""
    if cfg.perf.mode == "reference":
        model.predictor.set_attention("explicit")
        return
    if cfg.perf.compile:
        model.predictor.compile()  # in place: state_dict keys stay the same
        model.decoder.compile()


def _save(rt: Runtime, folder: Path, cfg: Any, model: Any, optimizers: dict[str, Any],
          stats: Any, epoch: int, samples_done: int, step: int, accum: "_Accum",
          kind: str) -> None:
    """Commit everything needed to continue exactly, then announce it."""
    state = {"format": ckpt.FORMAT, "run_id": rt.run_id, "config": to_dict(cfg),
             "epoch": epoch, "samples_done": samples_done, "step": step,
             "accum": accum.state(), "model": model_state(model),
             "optim": {k: o.state_dict() for k, o in optimizers.items()},
             "rng": rng_state(), "stats": stats}
    meta = {"run_id": rt.run_id, "epoch": epoch - 1 if samples_done == 0 else epoch,
            "next_epoch": epoch, "samples_done": samples_done, "step": step,
            "config_hash": config_hash(cfg)}
    fault("checkpoint")
    if kind == "epoch":
        name = f"epoch_{epoch - 1:04d}.pth"
        manifest = ckpt.save(folder, name, state, meta, latest=True)
        ckpt.prune(folder, cfg.training.keep_checkpoints)
    else:
        name = ckpt.LATEST
        manifest = ckpt.save(folder, name, state, meta, latest=False)
    fault("ckpt_before_event")
    rt.checkpoint(path=str(folder / name), kind=kind, epoch=meta["epoch"], step=step,
                  samples_done=samples_done, sha256=manifest["sha256"], size=manifest["size"])


class _Accum:
    """Sample-weighted running sums of an epoch's metrics (restored on a mid-epoch resume)."""

    def __init__(self, state: dict[str, Any] | None = None):
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.weights: dict[str, int] = dict(state.get("weights", {}))
        self.steps: int = state.get("steps", 0)
        self.samples: int = state.get("samples", 0)
        self.seconds: float = state.get("seconds", 0.0)

    def add(self, out: dict[str, torch.Tensor], n: int) -> None:
        for key, value in out.items():
            if value.dim() == 0:
                self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
                self.weights[key] = self.weights.get(key, 0) + n
        self.samples += n

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{k}": self.sums[k] / self.weights[k] for k in sorted(self.sums)}

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "weights": self.weights, "steps": self.steps,
                "samples": self.samples, "seconds": self.seconds}

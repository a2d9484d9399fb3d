# SPDX-License-Identifier: MIT
"""The training loop: set up, then per epoch its steps, validation, checkpoint, top to bottom."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from dinowm.faults import fault
from dinowm.train import step
from dinowm.train.resume import save
from dinowm.train.runtime import Runtime
from dinowm.train.samples import reconstruction_grid
from dinowm.train.setup import Training, set_up
from dinowm.train.state import reduce_accum
from dinowm.train.validate import rollout_metrics, validate


def train(run_dir: Path) -> str:
    """Train the run in `run_dir` up to its target epochs; returns 'completed' or 'stopped'.

    Under torchrun (several ranks) each rank runs this: the global batch is split over the
    ranks (data.sampling.plan_steps), gradients are all-reduced by DistributedDataParallel,
    metrics are summed over ranks, and rank 0 alone writes events, checkpoints, samples and
    train.log.
    """
    rt = Runtime(run_dir)
    status = _train(rt, Path(run_dir))
    rt.dist.close()
    return status


def _train(rt: Runtime, run_dir: Path) -> str:
    tr = set_up(rt, run_dir)
    t, state = tr.cfg.training, tr.state
    while state.epoch <= t.epochs:
        if not train_epoch(rt, tr):
            save(rt, tr.cfg, tr.model, tr.optimizers, tr.stats, state.checkpoint(), kind="latest")
            rt.end("stopped", epoch=state.epoch - 1, step=state.step)
            return "stopped"
        end_epoch(rt, tr, run_dir)
        done = state.epoch
        state.next_epoch()
        stop = rt.stop_now()
        if done % t.save_every_x_epoch == 0 or done == t.epochs or stop:
            rt.phase("checkpoint", epoch=done)
            save(rt, tr.cfg, tr.model, tr.optimizers, tr.stats, state.checkpoint(), kind="epoch")
            rt.dist.barrier("checkpoint_written")
        # (one rank reads its flag again); a stop during the last epoch's validation comes
        # too late to stop anything: the run is complete
        if (stop if rt.dist.enabled else rt.stop_requested) and done < t.epochs:
            rt.end("stopped", epoch=done, step=state.step)
            return "stopped"
    rt.end("completed", epoch=t.epochs, step=state.step)
    return "completed"


def train_epoch(rt: Runtime, tr: Training) -> bool:
    """The epoch's remaining steps (a resume starts mid-epoch, after the samples it trained
    on); False when a stop arrived (with several ranks: any rank's, agreed by all)."""
    t, state = tr.cfg.training, tr.state
    rt.phase("train", epoch=state.epoch)
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)
    tr.sampler.set_epoch(state.epoch, min(state.samples, len(tr.train_ds)))
    steps = tr.plan.steps()  # this rank's part of each remaining step of the epoch
    tr.stepper.net.train()
    batches = rt.batches(tr.loader, tr.mode.prefetch)
    state.first_step = state.accum.steps
    state.epoch_start = time.time() - state.accum.seconds
    for planned in steps:
        if state.accum.steps >= tr.steps_per_epoch:
            break
        # One optimiser step over n samples of all ranks: this rank's share in at most
        # grad_accum micro-batches of b samples each.
        group = [next(batches) for _ in planned.batches]
        tick = time.perf_counter()
        fault("step")
        fault("global_step", at=state.step + 1)
        loss = step.train_step(
            tr.stepper, group, state.step, n=planned.n, standin=planned.standin, sums=state.accum
        )
        state.step += 1
        state.samples += planned.n
        state.accum.steps += 1
        state.accum.seconds = time.time() - state.epoch_start
        rt.heartbeat(
            epoch=state.epoch,
            batch=state.accum.steps,
            batches=tr.steps_per_epoch,
            step=state.step,
            loss=loss,
            step_s=time.perf_counter() - tick,
            samples=planned.n,
            remaining=(t.epochs - state.epoch + 1) * tr.steps_per_epoch - state.accum.steps,
        )
        if rt.stop_now():
            return False
        rt.wait_while_paused()
    return True


def end_epoch(rt: Runtime, tr: Training, run_dir: Path) -> None:
    """Validation, rollouts and reconstructions of the epoch just trained: its event."""
    t, state, dist = tr.cfg.training, tr.state, rt.dist
    train_seconds = time.time() - state.epoch_start
    rt.phase("validation", epoch=state.epoch)
    fault("validation")
    val, images = validate(tr.model, tr.val_loader, rt, tr.cfg, tr.mode)
    epoch_sums = reduce_accum(state.accum, dist)  # every rank's samples
    metrics: dict[str, float | str] = {**epoch_sums.means("train"), **val}
    if t.rollouts and dist.is_main:  # a few trajectories per split: rank 0 alone
        metrics.update(
            rollout_metrics(tr.model, {"train": tr.train_ds, "val": tr.val_ds}, rt, tr.cfg, tr.mode)
        )
    if t.num_reconstruct_samples and images is not None and dist.is_main:
        path = reconstruction_grid(images, run_dir, state.epoch, t.num_reconstruct_samples)
        metrics["samples_path"] = str(path)
    rt.emit_epoch(
        epoch=state.epoch,
        metrics=metrics,
        started_at=state.epoch_start,
        ended_at=time.time(),
        steps=state.accum.steps,
        samples=epoch_sums.samples,
        train_seconds=train_seconds,
        batch_size=t.batch_size,
        resumed_at_step=state.first_step,
    )

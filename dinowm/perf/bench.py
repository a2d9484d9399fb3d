# SPDX-License-Identifier: MIT
"""One benchmark trial in its own process: loader, train steps and a validation pass.

`python -m dinowm.perf.bench SPEC_JSON` prints one JSON line. A trial builds the model of the
given config with a randomly initialised encoder (no weights file needed), runs `warmup` then
`steps` training steps at the given micro-batch and mode, as the trainer takes them (the
decoder trained on training.decoder_every's schedule, or not at all with model.decoder=off),
then validation batches. It reports s/step (the mean over the measured steps, so a schedule's
decoder steps count in proportion), samples/s, peak memory (GPU, or process RSS on CPU),
loader samples/s, and the FLOPs of a step (torch's FlopCounterMode: matmuls, convolutions and
attention, a multiply-add counted as 2) with the TFLOP/s they make and their share of the
card's dense BF16 peak (dinowm.train.gpus). `mem_cap_gib` caps the CUDA allocator first.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from dinowm.config import from_dict, with_values
from dinowm.data.datasets import build_datasets
from dinowm.model.build import build_model
from dinowm.model.world import WorldModel
from dinowm.perf.gpus import peak_bf16_tflops
from dinowm.schema import RunConfig
from dinowm.train import step
from dinowm.train.device import autocast, batch_to_device, cap_memory, cuda_settings
from dinowm.train.mode import Mode
from dinowm.train.optim import build_optimizers
from dinowm.train.state import seed_everything
from dinowm.train.step import Mark, Optimizers, Stepper, no_mark


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Trial:
    """The model, optimisers and loader of one trial, built as the trainer builds them."""

    cfg: RunConfig
    mode: Mode
    device: torch.device
    model: WorldModel
    stepper: Stepper  # the trainer's step parts: the model, optimisers, schedule
    loader: DataLoader
    batch: int

    @property
    def optimizers(self) -> Optimizers:
        return self.stepper.optimizers

    def autocast(self) -> contextlib.AbstractContextManager:
        """The trainer's autocast for the mode's precision."""
        return autocast(self.device, self.mode.precision)

    def to_device(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The trainer's uint8 frames → float [-1, 1] on the device; proprio and action."""
        return batch_to_device(batch, self.device, self.cfg.model.img_size)

    def kind(self, i: int) -> tuple[bool, bool]:
        """Step i's kind, as the loop takes it: (trains the decoder, decodes predictions)."""
        schedule = self.stepper.schedule
        return schedule.trains_decoder(i), schedule.decodes_predictions(i)

    def step(
        self, batch: dict[str, Tensor], i: int, mark: Mark = no_mark, split_backward: bool = False
    ) -> float:
        """Optimiser step i (0-based) of one micro-batch, the trainer's own step function
        (its copy to the device included); the live loss. The stepper keeps the step's
        outputs alive through the next one, as the loop does (reference mode's graph)."""
        return step.train_step(self.stepper, [batch], i, mark=mark, split_backward=split_backward)


def build_trial(spec: dict[str, Any]) -> Trial:
    """The trial of a spec: config, mode, batch, data_path, optional workers and mem_cap_gib."""
    cfg = with_values(
        from_dict(spec["config"]),
        perf__mode=spec["mode"],
        training__batch_size=spec["batch"],
        training__grad_accum=1,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.get("mem_cap_gib"):
        if device.type != "cuda":
            raise RuntimeError("a memory cap needs CUDA and this trial runs on the CPU")
        cap_memory(spec["mem_cap_gib"], device)
    if device.type == "cuda":  # what the trainer sets (Runtime.__init__)
        cuda_settings(cfg.training.deterministic)
    mode = Mode.of(cfg)
    seed_everything(cfg.seed)
    train_ds, _, _, info = build_datasets(
        spec["data_path"],
        frameskip=cfg.frameskip,
        num_hist=cfg.num_hist,
        num_pred=cfg.num_pred,
        split_ratio=cfg.data.split_ratio,
        split_seed=cfg.data.split_seed,
    )
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"], load_weights=False).to(
        device
    )
    mode.prepare(model, device)
    optimizers = build_optimizers(model, cfg, device)
    stepper = Stepper(
        model, model, optimizers, mode.schedule(model), device, cfg.model.img_size, mode.precision
    )
    workers = spec.get("workers", 0)
    loader = DataLoader(
        mode.dataset(train_ds, cfg.model.img_size),
        batch_size=spec["batch"],
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    return Trial(cfg, mode, device, model, stepper, loader, spec["batch"])


class _TotalsOnly:
    """Stands in for FlopCounterMode's module tracker, whose hooks fail on a module called
    under no_grad with an input that requires grad (the metric decode of predictions); the
    counter then keeps its totals alone."""

    parents: ClassVar[set[str]] = {"Global"}

    def __enter__(self) -> _TotalsOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def flop_per_step(trial: Trial, batch: dict[str, Tensor], steps: range) -> float | None:
    """The mean FLOPs of these optimiser steps, each kind of step (decoder trained or not,
    predictions decoded or not) counted once on a real step; None when nothing was counted
    (kernels the counter cannot see, e.g. torch.compile's)."""
    kinds = Counter(trial.kind(i) for i in steps)
    total = 0.0
    for kind, n in kinds.items():
        i = next(i for i in steps if trial.kind(i) == kind)
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = _TotalsOnly()  # type: ignore[assignment]  # duck-typed stand-in
        with counter:
            trial.step(batch, i)
        total += counter.get_total_flops() * n
    return total / len(steps) if total else None


def throughput(flops: float | None, s_per_step: float, gpu: str | None) -> dict[str, Any]:
    """flop_per_step, achieved_tflops and its share of the card's dense BF16 peak."""
    achieved = flops / s_per_step / 1e12 if flops else None
    peak = peak_bf16_tflops(gpu) if gpu else None
    return {
        "flop_per_step": flops,
        "achieved_tflops": achieved,
        "peak_card": peak[0] if peak else None,
        "peak_tflops": peak[1] if peak else None,
        "pct_of_peak": 100 * achieved / peak[1] if achieved and peak else None,
        "peak_note": None
        if peak
        else "no peak: a CPU trial"
        if not gpu
        else f"no dense BF16 peak known for {gpu}: add it to dinowm/perf/gpus.py",
    }


def trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one (mode, batch) trial; returns the measured numbers (or the OOM)."""
    t = build_trial(spec)
    device, b = t.device, t.batch
    result: dict[str, Any] = {
        "mode": t.cfg.perf.mode,
        "batch": b,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "decoder": t.cfg.model.decoder,
        "mem_cap_gib": spec.get("mem_cap_gib"),
        "decoder_every": t.mode.decoder_every if t.model.has_decoder else None,
    }
    batches, result["loader_samples_per_s"] = _loaded(t, spec.get("loader_batches", 3))
    try:
        measured = range(spec["warmup"], spec["warmup"] + spec["steps"])
        times, warmup = _timed_steps(t, batches, measured)
        result["train_peak_mib"] = _peak_mib(device)
        flops = flop_per_step(t, batches[0], measured)  # outside the timing
        result["val_peak_mib"] = _validation_peak(t, batches[:2])
        result["s_per_step"] = sum(times) / len(times)
        # the warm-up steps' time beyond measured ones: torch.compile's compile time, cuDNN's
        # autotuning and the allocator's first growth
        result["warmup_s"] = sum(warmup)
        result["warmup_extra_s"] = max(0.0, sum(warmup) - len(warmup) * result["s_per_step"])
        result["s_per_step_median"] = sorted(times)[len(times) // 2]
        result["samples_per_s"] = b / result["s_per_step"]
        result.update(throughput(flops, result["s_per_step"], result["gpu"]))
        result["status"] = "ok"
    except torch.cuda.OutOfMemoryError as exc:
        result.update(
            status="oom", error=str(exc).splitlines()[0][:200], train_peak_mib=_peak_mib(device)
        )
    return result


def _loaded(t: Trial, n: int) -> tuple[list[dict[str, Tensor]], float]:
    """The loader's first `n` batches, and its samples/s while it made them."""
    tick = time.perf_counter()
    batches = []
    for i, batch in enumerate(t.loader):
        batches.append(batch)
        if i + 1 >= n:
            break
    return batches, len(batches) * t.batch / (time.perf_counter() - tick)


def _timed_steps(
    t: Trial, batches: list[dict[str, Tensor]], measured: range
) -> tuple[list[float], list[float]]:
    """Seconds of each measured step, and of each warm-up step before them (the stepper keeps
    a step's outputs alive through the next, as the loop does: reference mode's graph)."""
    times: list[float] = []
    warmup: list[float] = []
    for i in range(measured.stop):
        sync(t.device)
        t0 = time.perf_counter()
        t.step(batches[i % len(batches)], i)
        sync(t.device)
        (times if i in measured else warmup).append(time.perf_counter() - t0)
    return times, warmup


def _validation_peak(t: Trial, batches: list[dict[str, Tensor]]) -> float:
    """Peak memory of validation forwards, as the loop runs them after an epoch's steps."""
    if t.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(t.device)
    t.model.eval()
    for batch in batches:
        visual, proprio, action = t.to_device(batch)
        with t.autocast(), t.mode.validation_grad():
            out = t.model(
                visual,
                proprio,
                action,
                decode_pred=True,
                keep_pred_graph=t.mode.keep_pred_graph,
            )
        t.stepper.out = {}  # the last training step's outputs lived until here
    sync(t.device)
    peak = _peak_mib(t.device)
    del out
    return peak


def main() -> int:
    spec = json.loads(sys.argv[1])
    print(json.dumps(trial(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

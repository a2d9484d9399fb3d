# SPDX-License-Identifier: MIT
"""The device a trainer computes on: its CUDA settings and memory cap, autocast, and batches
moved there (overlapped with compute on a side stream where asked).

The memory cap limits PyTorch's CUDA caching allocator (set_per_process_memory_fraction), so
that a large GPU can show what fits a smaller one. The CUDA context (a few hundred MiB) is
outside the allocator and comes on top of the cap.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping

import torch

from dinowm.data.datasets import prepare_frames
from dinowm.errors import ConfigError

MEMORY_CAP_ENV = "DINOWM_MEMORY_CAP_GIB"


def cuda_settings(deterministic: bool) -> None:
    """The trainer's CUDA math settings (TF32, cuDNN autotuning unless deterministic); the
    bench trials take the same."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = not deterministic


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `precision` says bf16; fp32 everywhere else."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_to_device(
    batch: dict[str, torch.Tensor], device: torch.device, img_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 frames → float [-1, 1] at img_size on `device`; proprio and action."""
    visual = batch["visual"].to(device, non_blocking=True)
    if visual.dtype == torch.uint8:  # reference mode's loader already transformed them
        visual = prepare_frames(visual, img_size)  # (B, F, 3, img, img)
    return (
        visual,
        batch["proprio"].to(device, non_blocking=True),
        batch["action"].to(device, non_blocking=True),
    )


def tokens_to_device(batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor | None:
    """Cached encoder tokens of the batch (B, F, P, D) on the device, when the feature cache
    is on."""
    tokens = batch.get("tokens")
    return None if tokens is None else tokens.to(device, non_blocking=True)


class Prefetcher:
    """Host-to-device copies of the next batch on a side CUDA stream while this step computes.

    The loader pins its batches, so the copies are asynchronous; the compute stream waits for
    a batch's copy before using it, and record_stream keeps the allocator from reusing its
    memory while the compute stream may still read it. Pulls one batch ahead of the loop.
    """

    def __init__(self, it: Iterator[dict[str, torch.Tensor]], device: torch.device) -> None:
        self.it, self.device = it, device
        self.stream = torch.cuda.Stream(device)
        self.ahead = self._copy()

    def _copy(self) -> dict[str, torch.Tensor] | None:
        batch = next(self.it, None)
        if batch is None:
            return None
        with torch.cuda.stream(self.stream):
            return {
                k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()
            }

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.ahead is None:
            raise StopIteration
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)
        batch = self.ahead
        for value in batch.values():
            if torch.is_tensor(value):
                value.record_stream(compute)
        self.ahead = self._copy()
        return batch


def parse_cap(raw: str, what: str = MEMORY_CAP_ENV) -> float:
    """A cap in GiB from text; ConfigError names `what` unless it is a positive number."""
    try:
        cap = float(raw)
    except ValueError:
        cap = float("nan")
    if not cap > 0 or cap == float("inf"):
        raise ConfigError(
            f"{what}={raw!r} is not a positive number of GiB; give e.g. "
            f"{what}=16 to cap CUDA memory at 16 GiB, or unset it."
        )
    return cap


def cap_fraction(cap_gib: float, total_bytes: int) -> float:
    """The share of a GPU of `total_bytes` that `cap_gib` GiB is; at most 1 (no cap)."""
    return min(1.0, cap_gib * 2**30 / total_bytes)


def cap_memory(cap_gib: float, device: torch.device) -> float:
    """Cap this process's CUDA allocator on `device` at `cap_gib` GiB; the fraction set."""
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = cap_fraction(cap_gib, total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    return fraction


def memory_cap_from_env(
    device: torch.device, log: Callable[[str], None], env: Mapping[str, str] | None = None
) -> float | None:
    """DINOWM_MEMORY_CAP_GIB at device setup: the cap applied (and logged) on CUDA; without
    CUDA it is ignored, with a log line. None when unset or ignored."""
    raw = (os.environ if env is None else env).get(MEMORY_CAP_ENV, "").strip()
    if not raw:
        return None
    cap = parse_cap(raw)
    if device.type != "cuda":
        log(
            f"{MEMORY_CAP_ENV}={raw} ignored: it caps CUDA memory and this process trains on "
            f"{device}"
        )
        return None
    fraction = cap_memory(cap, device)
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    log(
        f"{MEMORY_CAP_ENV}={raw}: CUDA memory capped at {cap:g} GiB ({fraction:.1%} of "
        f"{torch.cuda.get_device_name(device)}'s {total:.1f} GiB)"
    )
    return cap

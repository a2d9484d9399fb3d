"""What the trainer knows of a GPU: its dense BF16 peak, and a cap on its memory.

The peaks are the vendor datasheets' dense BF16 tensor-core throughput (FP32 accumulate, no
2:4 sparsity: half the datasheet's headline number where that one assumes sparsity). They
are what `dinowm bench` divides its achieved TFLOP/s by. A card is matched by a pattern
searched in torch.cuda.get_device_name(); a card not listed has no known peak.

The memory cap limits PyTorch's CUDA caching allocator (set_per_process_memory_fraction), so
that a large GPU can show what fits a smaller one. The CUDA context (a few hundred MiB) is
outside the allocator and comes on top of the cap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import torch

from dinowm.errors import ConfigError

MEMORY_CAP_ENV = "DINOWM_MEMORY_CAP_GIB"

# (pattern in the CUDA device name, card, dense BF16 TFLOP/s): vendor datasheets. The first
# match wins, so a specific name comes before the general one it contains.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"H200(?! NVL)", "H200 SXM", 989.0),
    (r"H100 PCIe", "H100 PCIe", 756.0),
    (r"H100 (SXM|80GB HBM3)", "H100 SXM", 989.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bL40S\b", "L40S", 362.0),
    (r"\bL4\b", "L4", 121.0),
    (r"RTX 4090", "GeForce RTX 4090", 165.0),
    (r"RTX 3090(?! Ti)", "GeForce RTX 3090", 71.0),
    (r"RTX A4000\b", "RTX A4000", 76.7),  # 153.4 with sparsity
    (r"RTX A6000\b", "RTX A6000", 154.8),  # 309.7 with sparsity
)


def peak_bf16_tflops(device_name: str) -> tuple[str, float] | None:
    """(card, dense BF16 TFLOP/s) of a CUDA device name, or None for a card not listed."""
    for pattern, card, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return card, tflops
    return None


def parse_cap(raw: str, what: str = MEMORY_CAP_ENV) -> float:
    """A cap in GiB from text; ConfigError names `what` unless it is a positive number."""
    try:
        cap = float(raw)
    except ValueError:
        cap = float("nan")
    if not cap > 0 or cap == float("inf"):
        raise ConfigError(f"{what}={raw!r} is not a positive number of GiB; give e.g. "
                          f"{what}=16 to cap CUDA memory at 16 GiB, or unset it.")
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


def memory_cap_from_env(device: torch.device, log: Callable[[str], None],
                        env: Mapping[str, str] | None = None) -> float | None:
    """DINOWM_MEMORY_CAP_GIB at device setup: the cap applied (and logged) on CUDA; without
    CUDA it is ignored, with a log line. None when unset or ignored."""
    raw = (os.environ if env is None else env).get(MEMORY_CAP_ENV, "").strip()
    if not raw:
        return None
    cap = parse_cap(raw)
    if device.type != "cuda":
        log(f"{MEMORY_CAP_ENV}={raw} ignored: it caps CUDA memory and this process trains on "
            f"{device}")
        return None
    fraction = cap_memory(cap, device)
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    log(f"{MEMORY_CAP_ENV}={raw}: CUDA memory capped at {cap:g} GiB ({fraction:.1%} of "
        f"{torch.cuda.get_device_name(device)}'s {total:.1f} GiB)")
    return cap

# SPDX-License-Identifier: MIT
"""Each card's dense BF16 peak, which `dinowm bench` divides its achieved TFLOP/s by.

The peaks are the vendor datasheets' dense BF16 tensor-core throughput (FP32 accumulate, no
2:4 sparsity: half the datasheet's headline number where that one assumes sparsity). They
are what `dinowm bench` divides its achieved TFLOP/s by. A card is matched by a pattern
searched in torch.cuda.get_device_name(); a card not listed has no known peak.
"""

from __future__ import annotations

import re

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

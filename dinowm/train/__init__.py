# SPDX-License-Identifier: MIT
"""The training loop: one trainer process of a run (python -m dinowm.train), its steps, its
validation, its checkpoints and what it reports. Imports torch."""

from dinowm import faults


def _injected_oom() -> None:
    """DINOWM_FAULT=...:oom raises what CUDA raises when it runs out of memory."""
    import torch

    raise torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 442.00 MiB (injected by DINOWM_FAULT)"
    )


faults.ACTIONS["oom"] = _injected_oom

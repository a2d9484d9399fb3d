"""Per-epoch reconstruction grids: true frame, its reconstruction, the predicted frame."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image


def reconstruction_grid(images: dict[str, torch.Tensor], folder: Path, epoch: int,
                        n: int) -> Path:
    """Save rows of [true | reconstructed | predicted] for the last frame of n val samples."""
    folder.mkdir(parents=True, exist_ok=True)
    n = min(n, images["true"].shape[0])
    true = images["true"][:n, -1]  # (n, 3, H, W) the frame after the context
    recon = images["reconstructed"][:n, -1]
    pred = images["pred"][:n, -1]
    grid = torch.stack([true, recon, pred], dim=1).flatten(0, 1)  # (3n, 3, H, W)
    grid = ((grid.clamp(-1, 1) + 1) / 2).float()
    path = folder / f"epoch_{epoch:04d}.png"
    tmp = folder / f".epoch_{epoch:04d}.png.tmp"
    save_image(grid, tmp, nrow=3, padding=2, format="png")
    tmp.replace(path)
    return path

# SPDX-License-Identifier: MIT
"""Per-epoch reconstruction grids: true frame, its reconstruction, the predicted frame.

The PNG is written here with zlib rather than through torchvision: importing torchvision costs
the trainer about 2.5 s of CPU at every start and resume, for one small image per epoch.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch

from dinowm import rundir

PAD = 2  # black border between and around the tiles, as in the public model's sample grids


def tile(images: torch.Tensor, ncol: int, pad: int = PAD) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> one (3, rows*(H+pad)+pad, ncol*(W+pad)+pad) image, row-major."""
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    out = torch.zeros(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[:, y : y + h, x : x + w] = images[i]
    return out


def png_bytes(image: torch.Tensor) -> bytes:
    """Encode a (3, H, W) float image in [0, 1] as an 8-bit RGB PNG."""
    rgb = image.detach().cpu().float().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    h, w = rgb.shape[1:]
    pixels = rgb.permute(1, 2, 0).contiguous().numpy()
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def reconstruction_grid(images: dict[str, torch.Tensor], run_dir: Path, epoch: int, n: int) -> Path:
    """Save rows of [true | reconstructed | predicted] for the last frame of n val samples."""
    path = rundir.sample_path(run_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = min(n, images["true"].shape[0])
    true = images["true"][:n, -1]  # (n, 3, H, W) the frame after the context
    recon = images["reconstructed"][:n, -1]
    pred = images["pred"][:n, -1]
    grid = torch.stack([true, recon, pred], dim=1).flatten(0, 1)  # (3n, 3, H, W)
    grid = (grid.detach().cpu().float().clamp(-1, 1) + 1) / 2
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png_bytes(tile(grid, ncol=3)))
    tmp.replace(path)
    return path

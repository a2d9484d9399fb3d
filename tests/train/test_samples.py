# SPDX-License-Identifier: MIT
"""The reconstruction grid PNG: a valid file that decodes to exactly the tiled pixels."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png
from torchvision.utils import make_grid, save_image

from dinowm.train.samples import reconstruction_grid, tile


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_grid_decodes_to_the_same_pixels_as_torchvision_writes(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    images = {k: torch.rand(4, 3, 3, 20, 12, generator=g) * 2 - 1
              for k in ("true", "reconstructed", "pred")}
    path = reconstruction_grid(images, tmp_path, 7, n=3)
    assert path == tmp_path / "samples" / "epoch_0007.png" and not list(path.parent.glob(".*tmp"))
    ours = decode_png(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8))

    grid = torch.stack([images[k][:3, -1] for k in ("true", "reconstructed", "pred")], 1)
    grid = (grid.flatten(0, 1).clamp(-1, 1) + 1) / 2
    buf = io.BytesIO()
    save_image(grid, buf, nrow=3, padding=2, format="png")
    theirs = decode_png(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8))
    assert ours.shape == theirs.shape == (3, 3 * 22 + 2, 3 * 14 + 2)
    assert torch.equal(ours, theirs)
    assert torch.equal(tile(grid, 3), make_grid(grid, nrow=3, padding=2))


def test_the_trainer_does_not_import_torchvision() -> None:
    import subprocess
    code = ("import sys, dinowm.train.__main__, dinowm.train.loop, dinowm.model.build; "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

# SPDX-License-Identifier: MIT
"""Patch-token decoder: the DINO-WM "VQ-VAE" decoder used without quantisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResBlock(nn.Module):
    """ReLU, 3x3 conv to `hidden`, ReLU, 1x1 conv back, plus the input."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x)


def upsampler(
    in_ch: int, out_ch: int, channels: int, res_blocks: int, res_channels: int
) -> nn.Sequential:
    """Conv3x3, residual blocks, then two stride-2 transposed convs: 4x the resolution."""
    return nn.Sequential(
        nn.Conv2d(in_ch, channels, 3, padding=1),
        *(ResBlock(channels, res_channels) for _ in range(res_blocks)),
        nn.ReLU(),
        nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(channels // 2, out_ch, 4, stride=2, padding=1),
    )


class Decoder(nn.Module):
    """Two stacked 4x upsamplers: (N, in_dim, h, w) patch grid -> (N, 3, 16h, 16w) image."""

    def __init__(
        self, in_dim: int = 384, channels: int = 384, res_blocks: int = 4, res_channels: int = 128
    ) -> None:
        super().__init__()
        # As in the public VQVAE: the first stage maps back to in_dim channels (14 -> 56 px),
        # the second to RGB (56 -> 224 px); no output activation.
        self.upsample = upsampler(in_dim, in_dim, channels, res_blocks, res_channels)
        self.to_image = upsampler(in_dim, 3, channels, res_blocks, res_channels)
        self.channels_last = False

    def to_channels_last(self) -> None:
        """Store weights and inputs NHWC, the layout cuDNN's fastest convolutions use."""
        self.to(memory_format=torch.channels_last)  # in place: the same Parameter objects
        self.channels_last = True

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # (N, in_dim, h, w), NHWC
        return self.to_image(self.upsample(x))  # (N, 3, 16h, 16w)

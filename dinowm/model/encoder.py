# SPDX-License-Identifier: MIT
"""Frozen DINOv2 ViT encoder with the official `dinov2_vits14_pretrain.pth` key layout."""

from __future__ import annotations

import pickle

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinowm.config import DINOV2_WEIGHTS_FILE, DINOV2_WEIGHTS_URL, dinov2_weights_path
from dinowm.errors import ConfigError

PATCH_SIZE = 14
POS_GRID = 37  # the official table is for 518 px = 37 x 37 patches
# DINOv2 interpolates the position table with a scale factor of (grid + 0.1) / 37 rather than an
# output size (a historical work-around kept for backward compatibility); we do the same.
INTERPOLATE_OFFSET = 0.1


class LayerScale(nn.Module):
    """Per-channel learned scale on a residual branch (key `gamma`)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention with a biased qkv projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, d_head)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Two-layer GELU MLP (keys fc1, fc2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale, as in DINOv2."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens (key `proj`)."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, h*w, D)


class Encoder(nn.Module):
    """DINOv2 ViT returning the normalised patch tokens; frozen and always in eval mode."""

    def __init__(self, dim: int, depth: int, heads: int, img_size: int, name: str) -> None:
        super().__init__()
        if img_size % PATCH_SIZE:
            raise ConfigError(
                f"Encoder image size {img_size} is not a multiple of the patch size {PATCH_SIZE}; "
                f"use e.g. {img_size // PATCH_SIZE * PATCH_SIZE}."
            )
        self.name = name
        self.embed_dim = dim
        self.patch_size = PATCH_SIZE
        self.img_size = img_size
        self.num_patches = (img_size // PATCH_SIZE) ** 2
        self.is_pretrained = False
        self.patch_embed = PatchEmbed(dim, PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_GRID * POS_GRID, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused here, kept for the key layout
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()
        self.requires_grad_(False)
        self._pos_cache: tuple[tuple, Tensor] | None = None
        self.train(False)

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def label(self) -> str:
        """Human-readable description for logs and the UI."""
        if self.name == "tiny":
            return "tiny ViT (random init, untrained)"
        state = "pretrained" if self.is_pretrained else "random init, untrained"
        return f"DINOv2 ViT-S/14 ({state})"

    def train(self, mode: bool = True) -> Encoder:
        """Stay in eval mode whatever the parent asks: the encoder is frozen."""
        return super().train(False)

    def _pos_table(self, h: int, w: int) -> Tensor:
        """Position table for an h x w grid, cached while the parameter is unchanged."""
        p = self.pos_embed
        key = (h, w, p._version, p.data_ptr(), p.device, p.dtype)
        if self._pos_cache is not None and self._pos_cache[0] == key and not p.requires_grad:
            return self._pos_cache[1]
        with torch.set_grad_enabled(p.requires_grad):
            cls_pos, grid = p[:, :1].float(), p[:, 1:].float()
            grid = grid.reshape(1, POS_GRID, POS_GRID, -1).permute(0, 3, 1, 2)  # (1, D, 37, 37)
            if (h, w) != (POS_GRID, POS_GRID):
                scale = ((h + INTERPOLATE_OFFSET) / POS_GRID, (w + INTERPOLATE_OFFSET) / POS_GRID)
                grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
            if grid.shape[-2:] != (h, w):
                raise RuntimeError(
                    f"position table interpolated to {tuple(grid.shape[-2:])}, not {(h, w)}"
                )
            table = torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)  # (1, 1+h*w, D)
        if not p.requires_grad:
            self._pos_cache = (key, table)
        return table

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> normalised patch tokens (N, H/14 * W/14, D)."""
        n, _, height, width = images.shape
        x = self.patch_embed(images)  # (N, P, D)
        x = torch.cat([self.cls_token.expand(n, -1, -1).to(x.dtype), x], dim=1)
        x = x + self._pos_table(height // PATCH_SIZE, width // PATCH_SIZE).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 1:]  # (N, P, D): drop the cls token


def build_encoder(
    name: str, img_size: int, tiny_dim: int, tiny_depth: int, tiny_heads: int
) -> Encoder:
    """Build the full-size DINOv2 ViT-S/14 ("dinov2_vits14") or a small random one ("tiny")."""
    if name == "dinov2_vits14":
        return Encoder(dim=384, depth=12, heads=6, img_size=img_size, name=name)
    if name == "tiny":
        if tiny_dim % tiny_heads:
            raise ConfigError(
                f"Tiny encoder dim {tiny_dim} is not divisible by its {tiny_heads} heads."
            )
        return Encoder(
            dim=tiny_dim, depth=tiny_depth, heads=tiny_heads, img_size=img_size, name=name
        )
    raise ConfigError(
        f"Unknown encoder {name!r}; use model.encoder=dinov2_vits14 or model.encoder=tiny."
    )


def load_dinov2_weights(encoder: Encoder, path: str | None) -> str:
    """Load the official DINOv2 ViT-S/14 weights strictly into `encoder` from model.encoder_weights
    or where torch.hub keeps them (dinowm.config.dinov2_weights_path); never downloads."""
    resolved = dinov2_weights_path(path or "")
    if not resolved.is_file():
        raise ConfigError(
            f"DINOv2 weights not found at {resolved}: put {DINOV2_WEIGHTS_FILE} there "
            f"(download {DINOV2_WEIGHTS_URL}), or set model.encoder_weights=PATH, or use "
            f"model.encoder=tiny for an untrained test encoder."
        )
    try:
        state = torch.load(resolved, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ConfigError(f"Cannot read DINOv2 weights {resolved}: {err}".splitlines()[0]) from err
    if not isinstance(state, dict):
        raise ConfigError(
            f"DINOv2 weights {resolved} hold a {type(state).__name__}, not a state dict."
        )
    expected = encoder.state_dict()
    bad = [f"missing {k}" for k in expected if k not in state]
    bad += [f"unexpected {k}" for k in state if k not in expected]
    bad += [
        f"{k} shape {tuple(getattr(v, 'shape', ()))} != {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and (not isinstance(v, Tensor) or v.shape != expected[k].shape)
    ]
    if bad:
        raise ConfigError(
            f"DINOv2 weights {resolved} do not match the ViT-S/14 layout ({len(bad)} problems): "
            f"{'; '.join(bad[:4])}; expected the official {DINOV2_WEIGHTS_FILE}."
        )
    encoder.load_state_dict(state, strict=True)
    encoder.is_pretrained = True
    return str(resolved)

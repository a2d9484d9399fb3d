# SPDX-License-Identifier: MIT
"""Frame-causal ViT predictor: latent frames 0..i predict frame i+1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_MODES = ("sdpa", "explicit")


def frame_causal_mask(num_frames: int, num_patches: int, device: torch.device) -> Tensor:
    """Boolean (N, N) mask, N = frames*patches: True where a token of frame i sees frame j <= i."""
    frame = torch.arange(num_frames * num_patches, device=device) // num_patches
    return frame[:, None] >= frame[None, :]


class Attention(nn.Module):
    """Pre-norm multi-head attention under a frame-causal mask."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, mode: str) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.dropout = dropout
        self.mode = mode
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, _ = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, dim_head)
        p = self.dropout if self.training else 0.0
        if self.mode == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:  # the public code's way: explicit scores, -inf fill, softmax, dropout
            dots = (q @ k.transpose(-1, -2)) * self.scale  # (B, heads, N, N)
            attn = dots.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            out = F.dropout(attn, p=p) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    """Pre-norm GELU MLP with dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Block(nn.Module):
    """Attention then MLP, each with a residual connection."""

    def __init__(
        self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float, mode: str
    ) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, dim_head, dropout, mode)
        self.ff = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(x, mask)
        return x + self.ff(x)


class Predictor(nn.Module):
    """ViT over (frames x patches) latent tokens, no patch embedding, CLS or head."""

    def __init__(
        self,
        num_patches: int,
        num_frames: int,
        dim: int,
        depth: int = 6,
        heads: int = 16,
        dim_head: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.1,
        attention: str = "sdpa",
        emb_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention={attention!r}; expected one of {ATTENTION_MODES}")
        self.num_patches = num_patches
        self.num_frames = num_frames
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * num_patches, dim))
        self.emb_dropout = nn.Dropout(emb_dropout)  # 0 in the published config
        self.layers = nn.ModuleList(
            Block(dim, heads, dim_head, mlp_dim, dropout, attention) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self._masks: dict[tuple[int, torch.device], Tensor] = {}

    def set_attention(self, attention: str) -> None:
        """Switch every block between fused ("sdpa") and explicit attention."""
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention={attention!r}; expected one of {ATTENTION_MODES}")
        for layer in self.layers:
            assert isinstance(layer, Block)
            layer.attn.mode = attention

    def _mask(self, num_frames: int, device: torch.device) -> Tensor:
        key = (num_frames, device)
        if key not in self._masks:
            self._masks[key] = frame_causal_mask(num_frames, self.num_patches, device)
        return self._masks[key]

    def forward(self, x: Tensor) -> Tensor:
        """Tokens (B, T*P, dim), T <= num_frames -> predictions of the same shape."""
        n = x.shape[1]
        if n % self.num_patches or n > self.pos_embedding.shape[1]:
            raise ValueError(
                f"predictor got {n} tokens; expected a multiple of {self.num_patches} patches "
                f"for at most {self.num_frames} frames"
            )
        mask = self._mask(n // self.num_patches, x.device)  # (N, N)
        x = self.emb_dropout(x + self.pos_embedding[:, :n])
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)

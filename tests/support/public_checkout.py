# SPDX-License-Identifier: MIT
"""A stand-in for a DINO-WM checkout: the public module paths, class names, constructor
signatures and module trees (so parameter names match), written by us for the tests.

Like the public code, the predictor's Attention moves its frame mask to 'cuda' when built,
ProprioceptiveEmbedding prints when built and models/vqvae.py imports distributed_fn. Forward
passes use reshape instead of einops, so the stand-in needs torch only.
"""

from __future__ import annotations

from pathlib import Path

VIT = '''
import torch
from torch import nn

NUM_FRAMES = 1
NUM_PATCHES = 1


def generate_mask_matrix(npatch, nwindow):
    frame = torch.arange(npatch * nwindow) // npatch
    return (frame[:, None] >= frame[None, :]).float()[None, None]  # (1, 1, N, N)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout=0.):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden_dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden_dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim, heads=8, dim_head=64, dropout=0.):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.attend = nn.Softmax(dim=-1)
        self.dropout = nn.Dropout(dropout)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Identity() if heads == 1 and dim_head == dim else \\
            nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.bias = generate_mask_matrix(NUM_PATCHES, NUM_FRAMES).to('cuda')

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        dots = (q @ k.transpose(-1, -2)) * self.scale
        dots = dots.masked_fill(self.bias[:, :, :n, :n] == 0, float("-inf"))
        out = self.dropout(self.attend(dots)) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout=0.):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout),
                           FeedForward(dim, mlp_dim, dropout=dropout)]) for _ in range(depth))

    def forward(self, x):
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class ViTPredictor(nn.Module):
    def __init__(self, *, num_patches, num_frames, dim, depth, heads, mlp_dim, pool='cls',
                 dim_head=64, dropout=0., emb_dropout=0.):
        super().__init__()
        global NUM_FRAMES, NUM_PATCHES
        NUM_FRAMES, NUM_PATCHES = num_frames, num_patches
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * num_patches, dim))
        self.dropout = nn.Dropout(emb_dropout)
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, dropout)
        self.pool = pool

    def forward(self, x):
        x = self.dropout(x + self.pos_embedding[:, :x.shape[1]])
        return self.transformer(x)
'''

VQVAE = '''
import torch
from torch import nn

import distributed_fn  # noqa: F401  (the public module imports it too)


class Quantize(nn.Module):
    def __init__(self, dim, n_embed, decay=0.99, eps=1e-5):
        super().__init__()
        self.dim, self.n_embed, self.decay, self.eps = dim, n_embed, decay, eps
        embed = torch.randn(dim, n_embed)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(n_embed))
        self.register_buffer("embed_avg", embed.clone())


class ResBlock(nn.Module):
    def __init__(self, in_channel, channel):
        super().__init__()
        self.conv = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channel, channel, 3, padding=1),
                                  nn.ReLU(inplace=True), nn.Conv2d(channel, in_channel, 1))

    def forward(self, input):
        return self.conv(input) + input


class Decoder(nn.Module):
    def __init__(self, in_channel, out_channel, channel, n_res_block, n_res_channel, stride):
        super().__init__()
        blocks = [nn.Conv2d(in_channel, channel, 3, padding=1)]
        blocks += [ResBlock(channel, n_res_channel) for _ in range(n_res_block)]
        blocks += [nn.ReLU(inplace=True),
                   nn.ConvTranspose2d(channel, channel // 2, 4, stride=2, padding=1),
                   nn.ReLU(inplace=True),
                   nn.ConvTranspose2d(channel // 2, out_channel, 4, stride=2, padding=1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, input):
        return self.blocks(input)


class VQVAE(nn.Module):
    def __init__(self, in_channel=3, channel=128, n_res_block=2, n_res_channel=32, emb_dim=64,
                 n_embed=512, decay=0.99, quantize=True):
        super().__init__()
        self.quantize = quantize
        self.quantize_b = Quantize(emb_dim, n_embed)
        self.upsample_b = Decoder(emb_dim, emb_dim, channel, n_res_block, n_res_channel, 4)
        self.dec = Decoder(emb_dim, in_channel, channel, n_res_block, n_res_channel, 4)

    def forward(self, input):  # (b, t, patches, emb) -> ((b*t, 3, H, W), diff)
        b, t, p, e = input.shape
        side = int(p ** 0.5)
        grid = input.reshape(b * t, side, side, e).permute(0, 3, 1, 2)
        return self.dec(self.upsample_b(grid)), torch.zeros(1)
'''

PROPRIO = '''
import torch.nn as nn


class ProprioceptiveEmbedding(nn.Module):
    def __init__(self, num_frames=16, tubelet_size=1, in_chans=8, emb_dim=384,
                 use_3d_pos=False):
        super().__init__()
        print(f"stand-in ProprioceptiveEmbedding {in_chans} -> {emb_dim}")
        self.num_frames, self.tubelet_size = num_frames, tubelet_size
        self.in_chans, self.emb_dim = in_chans, emb_dim
        self.patch_embed = nn.Conv1d(in_chans, emb_dim, kernel_size=tubelet_size,
                                     stride=tubelet_size)

    def forward(self, x):  # (B, T, D) -> (B, T, emb_dim)
        return self.patch_embed(x.permute(0, 2, 1)).permute(0, 2, 1)
'''

DISTRIBUTED = '''
def all_reduce(tensor, op=None):
    return tensor
'''

FILES = {"models/__init__.py": "", "models/vit.py": VIT, "models/vqvae.py": VQVAE,
         "models/proprio.py": PROPRIO, "distributed_fn/__init__.py": DISTRIBUTED,
         "plan.py": "# stand-in: the public plan.py loads outputs/<model_name>/\n"}


def write_checkout(root: Path, skip: tuple[str, ...] = (),
                   replace: dict[str, str] | None = None) -> Path:
    """The stand-in checkout at `root`, without the files in `skip`, with `replace`d texts."""
    for name, text in {**FILES, **(replace or {})}.items():
        if name in skip:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return root

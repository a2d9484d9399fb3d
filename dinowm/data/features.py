# SPDX-License-Identifier: MIT
"""Frozen-feature cache: the encoder's patch tokens of every frame, computed once, fp16 on disk.

The encoder is frozen and its inputs are fixed, so its output per frame never changes. The cache
is keyed by a manifest (encoder weights hash, resolutions, dtype, dataset fingerprint); any
change makes a new cache. Files are written to a temp folder and renamed, manifest last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dinowm import __version__
from dinowm.data.datasets import SliceDataset, prepare_frames

MANIFEST = "manifest.json"
DTYPE = torch.float16


def weights_hash(encoder: torch.nn.Module) -> str:
    """sha256 over the encoder's parameters and buffers (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def dataset_fingerprint(files: list[Path]) -> str:
    """Names, sizes and modification times of the frame files (cheap; no content read)."""
    digest = hashlib.sha256()
    for path in files:
        st = path.stat()
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def manifest_for(model: Any, frame_files: list[Path], lengths: list[int]) -> dict[str, Any]:
    """What identifies a cache: change any of it and the cache is rebuilt."""
    return {
        "format": 1,
        "dinowm": __version__,
        "encoder": model.encoder.label,
        "weights_sha256": weights_hash(model.encoder),
        "img_size": model.img_size,
        "encoder_img_size": model.encoder_img_size,
        "dtype": str(DTYPE),
        "patches": model.num_patches,
        "dim": model.visual_dim,
        "dataset": dataset_fingerprint(frame_files),
        "lengths": lengths,
    }


def cache_folder(root: Path, manifest: dict[str, Any]) -> Path:
    """root/<16 hex of the manifest>."""
    key = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    return root / key


@torch.no_grad()
def build_cache(
    model: Any,
    dataset: SliceDataset,
    root: Path,
    device: torch.device,
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode every frame of every episode once; returns the (existing or new) cache folder."""
    files = dataset.frames.files
    manifest = manifest_for(model, files, dataset.lengths)
    folder = cache_folder(root, manifest)
    if (folder / MANIFEST).exists():
        return folder
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.eval()
    try:
        for ep, length in enumerate(dataset.lengths):
            frames = dataset.frames.episode(ep)[:length]  # (T, H, W, C) uint8
            out = []
            for s in range(0, length, batch):
                chunk = frames[s : s + batch].permute(0, 3, 1, 2).to(device)  # (b, C, H, W)
                if chunk.shape[1] == 1:
                    chunk = chunk.expand(-1, 3, -1, -1)
                visual = prepare_frames(chunk, model.img_size)[:, None]  # (b, 1, 3, img, img)
                out.append(model.encode_visual(visual)[:, 0].to(DTYPE).cpu())  # (b, P, D)
            torch.save(torch.cat(out), tmp / f"ep_{ep:06d}.pt")
            if progress:
                progress(ep + 1, len(dataset.lengths))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


GIB = 2**30


def cache_bytes(model: Any, dataset: SliceDataset) -> int:
    """The cache's size on disk: every frame of every episode, fp16 patch tokens."""
    per_frame = model.num_patches * model.visual_dim * torch.finfo(DTYPE).bits // 8
    return sum(dataset.lengths) * per_frame


def wanted(
    setting: str,
    model: Any,
    dataset: SliceDataset,
    root: Path,
    device: torch.device,
    budget_gib: float,
) -> tuple[bool, str]:
    """Whether to read tokens from the cache (data.cache_features), and why, for the log.

    auto caches on a GPU when the cache fits data.cache_max_gib and half the free disk; on
    the CPU it never does (fp32 training keeps the encoder's exact output there).
    """
    if setting != "auto":
        return setting == "on", f"data.cache_features={setting}"
    if device.type != "cuda":
        return False, "off on the CPU (data.cache_features=auto)"
    need = cache_bytes(model, dataset)
    existing = root  # the folder may not exist yet: measure the nearest one that does
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    size = f"{need / GIB:.1f} GiB"
    if need > budget_gib * GIB:
        return False, (
            f"off: it needs {size}, over data.cache_max_gib={budget_gib:g} "
            f"(data.cache_features=on caches anyway)"
        )
    if need > free / 2:
        return False, (
            f"off: it needs {size} and {existing} has {free / GIB:.1f} GiB free (it may take half)"
        )
    return True, f"on: {size} of data.cache_max_gib={budget_gib:g} (data.cache_features=auto)"


def attach_cache(
    model: Any,
    train_ds: SliceDataset,
    val_ds: SliceDataset,
    root: Path,
    device: torch.device,
    log: Callable[[str], None],
) -> Path:
    """Build (or reuse) the cache of the run's frames; both splits then read tokens from it."""
    folder = build_cache(
        model, train_ds, root, device, progress=lambda i, n: log(f"feature cache: episode {i}/{n}")
    )
    train_ds.tokens = val_ds.tokens = TokenStore(folder)  # the splits share one FrameStore
    log(f"feature cache: {folder}")
    return folder


class TokenStore:
    """Memory-mapped per-episode token files with a small per-process cache."""

    def __init__(self, folder: Path, cache: int = 64) -> None:
        self.folder, self.cache = Path(folder), cache
        self._open: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": OrderedDict()}  # workers map the files themselves

    def episode(self, ep: int) -> torch.Tensor:
        """(T, P, D) fp16 tokens of episode `ep`."""
        tokens = self._open.pop(ep, None)
        if tokens is None:
            tokens = torch.load(self.folder / f"ep_{ep:06d}.pt", mmap=True, weights_only=True)
        self._open[ep] = tokens
        while len(self._open) > self.cache:
            self._open.popitem(last=False)
        return tokens

    def tokens(self, ep: int, start: int, num: int, step: int) -> torch.Tensor:
        """Tokens of frames start, start+step, ... as a (num, P, D) copy."""
        return self.episode(ep)[start : start + (num - 1) * step + 1 : step].clone()

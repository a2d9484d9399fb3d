# SPDX-License-Identifier: MIT
"""Room a run needs: /dev/shm for the DataLoader workers, disk for the checkpoints it keeps."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from dinowm import rundir
from dinowm.doctor.check import FAIL, OK, SKIPPED, WARN, Check
from dinowm.formats import fmt_bytes
from dinowm.schema import RunConfig

PREFETCH = 4  # batches each worker keeps ready (the trainer's DataLoader prefetch_factor)
FP32, ADAM_MOMENTS = 4, 2
CHECKPOINT_EXTRA = 2**20  # RNG states, statistics, the config: well under a MiB
VIT_POS_GRID = 37  # the DINOv2 position table (518 px) kept in the encoder's state dict

FreeBytes = Callable[[Path], int]


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer on the file system holding path."""
    return shutil.disk_usage(path).free


def parameter_counts(cfg: RunConfig) -> dict[str, int]:
    """Parameters per part, from the configuration alone (the trainer's modules, counted)."""
    m, d = cfg.model, cfg.emb_dim
    inner = m.predictor_heads * m.predictor_dim_head
    block = (
        2 * d
        + 3 * d * inner
        + inner * d
        + d  # attention: norm, qkv (no bias), out
        + 2 * d
        + d * m.predictor_mlp_dim
        + m.predictor_mlp_dim
        + m.predictor_mlp_dim * d
        + d
    )
    predictor = cfg.num_hist * cfg.num_patches * d + m.predictor_depth * block + 2 * d
    c, r, v = m.decoder_channels, m.decoder_res_channels, cfg.encoder_dim

    def upsampler(in_ch: int, out_ch: int) -> int:
        res = 9 * c * r + r + r * c + c
        return (
            9 * in_ch * c
            + c
            + m.decoder_res_blocks * res
            + 16 * c * (c // 2)
            + c // 2
            + 16 * (c // 2) * out_ch
            + out_ch
        )

    depth = 12 if m.encoder == "dinov2_vits14" else m.tiny_depth
    encoder = (
        3 * 14 * 14 * v
        + v
        + v
        + (1 + VIT_POS_GRID**2) * v
        + v
        + depth * (12 * v * v + 15 * v)
        + 2 * v
    )
    return {
        "encoder": encoder,
        "predictor": predictor,
        "decoder": upsampler(v, v) + upsampler(v, 3),
    }


def checkpoint_estimate(cfg: RunConfig) -> tuple[int, str]:
    """Bytes of one checkpoint and how they were counted: fp32 weights of the trained parts
    and their two Adam moments; an untrained (tiny) encoder's weights are saved too; the
    action and proprio embeddings (a few hundred parameters) are left out."""
    counts = parameter_counts(cfg)
    trained = counts["predictor"] + counts["decoder"]
    size = trained * FP32 * (1 + ADAM_MOMENTS) + CHECKPOINT_EXTRA
    how = f"{trained / 1e6:.1f} M trained parameters × (weights + 2 Adam moments)"
    if cfg.encoder_untrained:
        size += counts["encoder"] * FP32
        how += f" + the untrained encoder's {counts['encoder'] / 1e6:.2f} M"
    return size, how


def largest_checkpoint(outputs: Path) -> tuple[int, str] | None:
    """The largest committed checkpoint of any run in outputs/, with its path."""
    best: tuple[int, str] | None = None
    for run_dir in sorted(outputs.glob("*/")) if outputs.is_dir() else []:
        for row in rundir.committed_checkpoints(run_dir):
            if row["size"] and (best is None or row["size"] > best[0]):
                best = (int(row["size"]), row["path"])
    return best


def check_disk(cfg: RunConfig, outputs: Path, free: FreeBytes = free_bytes) -> Check:
    """6. Free disk where the run folders go against the checkpoints a run keeps."""
    name = "disk"
    size, how = checkpoint_estimate(cfg)
    seen = largest_checkpoint(outputs)
    if seen and seen[0] > size:
        size, how = seen[0], f"the largest one in {outputs}: {seen[1]}"
    copies = cfg.training.keep_checkpoints + 1
    need = size * copies
    where = next(p for p in (outputs, *outputs.parents) if p.exists())
    have = free(where)
    found = (
        f"{fmt_bytes(have)} free in {where}; a run needs {fmt_bytes(need)}: "
        f"{copies} checkpoints (training.keep_checkpoints={cfg.training.keep_checkpoints} "
        f"+ the one being written) of {fmt_bytes(size)} ({how})"
    )
    fix = (
        "free space on that disk, point [project] outputs at a larger one, or lower "
        "training.keep_checkpoints"
    )
    if have < need:
        return Check(name, FAIL, found, fix)
    if have < 2 * need:
        return Check(name, WARN, f"{found}: room for one run only", fix)
    return Check(name, OK, found)


def shm_estimate(cfg: RunConfig, gpu: bool = False) -> tuple[int, str]:
    """Bytes of /dev/shm each DataLoader worker holds: PREFETCH batches of micro_batch
    samples, each F frames as the loader hands them over (uint8 in fast mode, float32
    transformed frames in reference mode) and, with the feature cache (data.cache_features=on,
    or auto on a machine with a GPU), fp16 patch tokens."""
    d = cfg.data
    reference = cfg.perf.mode == "reference"
    px = d.synth_image_size if d.synthetic and not reference else cfg.model.img_size
    frame = 3 * px * px * (FP32 if reference else 1)
    cached = d.cache_features == "on" or (d.cache_features == "auto" and gpu and not reference)
    tokens = cfg.num_patches * cfg.encoder_dim * 2 if cached else 0
    sample = cfg.num_frames * (frame + tokens)
    per_worker = PREFETCH * cfg.micro_batch * sample
    shown = "float32" if reference else "uint8"
    how = (
        f"{PREFETCH} batches × {cfg.micro_batch} samples × {cfg.num_frames} frames of "
        f"3×{px}×{px} {shown}{' + cached tokens' if tokens else ''} = "
        f"{fmt_bytes(per_worker)} a worker"
    )
    if not d.synthetic and not reference:
        how += f"; frames taken as {px} px, larger stored frames need more"
    return per_worker, how


def check_shm(cfg: RunConfig, shm: Path, free: FreeBytes = free_bytes, gpu: bool = False) -> Check:
    """5. /dev/shm free against what the DataLoader workers pass through it."""
    name = "/dev/shm"
    workers = cfg.data.num_workers
    if workers == 0:
        return Check(
            name,
            SKIPPED,
            "data.num_workers=0: batches are made in the trainer process, no shared memory needed",
        )
    if not shm.is_dir():
        return Check(name, SKIPPED, f"no {shm} on this system")
    per_worker, how = shm_estimate(cfg, gpu)
    need, have = workers * per_worker, free(shm)
    found = (
        f"{fmt_bytes(have)} free in {shm}; data.num_workers={workers} need about "
        f"{fmt_bytes(need)} ({how})"
    )
    fix = (
        "enlarge it (docker run --shm-size=8g, or mount -o remount,size=8G /dev/shm), or "
        "lower data.num_workers"
    )
    if have < need:
        return Check(name, FAIL, f"{found}: workers would die with 'Bus error'", fix)
    if have < 2 * need:
        return Check(name, WARN, f"{found}: little margin", fix)
    return Check(name, OK, found)

# SPDX-License-Identifier: MIT
"""Atomic checkpoints: state dicts only, a sha256 manifest as the commit marker, safe loading."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dinowm import __version__, rundir
from dinowm.errors import DinowmError
from dinowm.faults import fault

LATEST = rundir.LATEST_CHECKPOINT
FORMAT = 1


class CheckpointError(DinowmError):
    """A checkpoint that is missing, corrupt or from another configuration."""


@dataclass(frozen=True)
class Loaded:
    """A verified checkpoint and what was skipped to reach it."""

    path: Path
    state: dict[str, Any]
    manifest: dict[str, Any]
    skipped: list[tuple[str, str]]


def manifest_path(path: Path) -> Path:
    """The commit marker beside a checkpoint file."""
    return path.with_name(path.name + ".json")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: Path, data: bytes) -> None:
    """Temp file in the same folder, write, flush, fsync, chmod 0644, rename."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            half = len(data) // 2
            fh.write(data[:half])
            fault("ckpt_mid_write")
            fh.write(data[half:])
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        fault("ckpt_before_rename")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(
    folder: Path, name: str, state: dict[str, Any], meta: dict[str, Any], latest: bool = True
) -> dict[str, Any]:
    """Commit `state` as folder/name (+ manifest), and as model_latest.pth when `latest`.

    Order: data file, its manifest (the commit marker), directory fsync. A kill at any point
    leaves either the previous checkpoint or the new one, never a half one that verifies.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    write_atomic(target, data)
    fault("ckpt_after_rename")
    manifest = {
        "format": FORMAT,
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "time": time.time(),
        "torch": torch.__version__,
        "dinowm": __version__,
        **meta,
    }
    _write_manifest(target, manifest)
    fault("ckpt_after_manifest")
    if latest and name != LATEST:
        _link_latest(folder, target, manifest)
    fsync_dir(folder)
    return manifest


def _write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    write_atomic(manifest_path(target), json.dumps(manifest, indent=1, sort_keys=True).encode())


def _link_latest(folder: Path, target: Path, manifest: dict[str, Any]) -> None:
    """model_latest.pth as a hard link to the epoch file (no second write), renamed in place."""
    latest = folder / LATEST
    tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(target, tmp)
    except OSError:
        write_atomic(tmp, target.read_bytes())
    manifest_path(latest).unlink(missing_ok=True)  # never a manifest that names other bytes
    os.replace(tmp, latest)
    _write_manifest(latest, {**manifest, "file": LATEST})


def sweep_temp_files(folder: Path) -> list[str]:
    """Remove *.tmp files a kill between write and rename left behind."""
    removed = []
    if folder.exists():
        for path in folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def verify(path: Path) -> dict[str, Any]:
    """The manifest of a checkpoint whose bytes match it; CheckpointError otherwise."""
    mpath = manifest_path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if not mpath.exists():
        raise CheckpointError(f"{path} has no manifest (save interrupted before commit)")
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError:
        raise CheckpointError(f"{mpath} is not valid JSON") from None
    if path.stat().st_size != manifest.get("size"):
        raise CheckpointError(
            f"{path} is {path.stat().st_size} bytes, manifest says "
            f"{manifest.get('size')} (truncated)"
        )
    if sha256_file(path) != manifest.get("sha256"):
        raise CheckpointError(f"{path} does not match its sha256 (corrupted)")
    return manifest


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify, then torch.load with weights_only=True (refuses pickled code)."""
    manifest = verify(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for hostile or broken files
        raise CheckpointError(
            f"{path} cannot be loaded safely: {str(exc).splitlines()[0][:200]}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dinowm checkpoint (format {FORMAT})")
    return state, manifest


def candidates(folder: Path) -> list[Path]:
    """Checkpoint files, newest first: model_latest.pth, then epoch files by epoch."""
    if not folder.exists():
        return []
    epochs = rundir.epoch_checkpoints(folder)[::-1]
    latest = [folder / LATEST] if (folder / LATEST).exists() else []
    return latest + epochs


def load_latest(folder: Path) -> Loaded | None:
    """The newest checkpoint that verifies and loads; None when none was ever committed.

    A file without a manifest was never committed (the save was interrupted): it is skipped
    and, when nothing committed exists, training starts fresh, since nothing was lost. A
    committed checkpoint that fails to verify with no older one to fall back to is an error.
    """
    skipped: list[tuple[str, str]] = []
    broken = False
    for path in candidates(folder):
        try:
            state, manifest = load(path)
        except CheckpointError as exc:
            skipped.append((path.name, str(exc)))
            broken = broken or manifest_path(path).exists()
            continue
        return Loaded(path, state, manifest, skipped)
    if broken:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        raise CheckpointError(
            f"No usable checkpoint in {folder} ({reasons}); start a new run "
            f"or restore a checkpoint file."
        )
    return None


def prune(folder: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` epoch files (model_latest.pth stays)."""
    epochs = rundir.epoch_checkpoints(folder)
    removed = []
    for path in epochs[:-keep] if keep > 0 else epochs:
        manifest_path(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed

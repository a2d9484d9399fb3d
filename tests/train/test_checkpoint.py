# SPDX-License-Identifier: MIT
"""Checkpoints: atomic commit, verification, fallback order, refusal of hostile files."""

from __future__ import annotations

import json
import os
import pickle
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from dinowm.train import checkpoint as ckpt


def _state(value: float = 1.0) -> dict:
    return {"format": ckpt.FORMAT, "model": {"w": torch.full((4, 4), value)}, "epoch": 2,
            "rng": {"python": [[1, 2, 3], 3]}}


def test_save_commits_file_manifest_and_latest_link(tmp_path: Path) -> None:
    manifest = ckpt.save(tmp_path, "epoch_0001.pth", _state(), {"epoch": 1, "step": 10})
    assert manifest["sha256"] == ckpt.sha256_file(tmp_path / "epoch_0001.pth")
    latest = tmp_path / ckpt.LATEST
    assert os.path.samefile(latest, tmp_path / "epoch_0001.pth")
    assert json.loads(ckpt.manifest_path(latest).read_text())["file"] == ckpt.LATEST
    assert stat.S_IMODE((tmp_path / "epoch_0001.pth").stat().st_mode) == 0o644
    state, meta = ckpt.load(latest)
    assert torch.equal(state["model"]["w"], torch.ones(4, 4)) and meta["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "no_manifest"])
def test_damaged_latest_falls_back(tmp_path: Path, damage: str) -> None:
    ckpt.save(tmp_path, "epoch_0001.pth", _state(1.0), {"epoch": 1})
    ckpt.save(tmp_path, "epoch_0002.pth", _state(2.0), {"epoch": 2})
    target = tmp_path / "epoch_0002.pth"
    os.unlink(tmp_path / ckpt.LATEST)
    ckpt.manifest_path(tmp_path / ckpt.LATEST).unlink()
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        ckpt.manifest_path(target).unlink()
    loaded = ckpt.load_latest(tmp_path)
    assert loaded.path.name == "epoch_0001.pth"
    assert loaded.skipped and loaded.skipped[0][0] == "epoch_0002.pth"
    assert torch.equal(loaded.state["model"]["w"], torch.ones(4, 4))


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    ckpt.save(tmp_path, "epoch_0001.pth", _state(), {"epoch": 1}, latest=False)
    (tmp_path / "epoch_0001.pth").write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="No usable checkpoint"):
        ckpt.load_latest(tmp_path)
    assert ckpt.load_latest(tmp_path / "empty") is None


def test_never_committed_checkpoints_mean_a_fresh_start(tmp_path: Path) -> None:
    ckpt.save(tmp_path, "epoch_0001.pth", _state(), {"epoch": 1})
    for path in (tmp_path / "epoch_0001.pth", tmp_path / ckpt.LATEST):
        ckpt.manifest_path(path).unlink()  # killed before the manifest: never committed
    assert ckpt.load_latest(tmp_path) is None


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "epoch_0001.pth"
    torch.save({"format": ckpt.FORMAT, "payload": _Evil(marker)}, path)
    # A forged manifest that matches the bytes: only weights_only stands in the way.
    manifest = {"format": 1, "file": path.name, "sha256": ckpt.sha256_file(path),
                "size": path.stat().st_size}
    ckpt.manifest_path(path).write_text(json.dumps(manifest))
    with pytest.raises(ckpt.CheckpointError, match="cannot be loaded safely"):
        ckpt.load(path)
    assert not marker.exists()
    # and the plain pickle really would have run it
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        assert b"system" in zf.read(name)
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


def test_sweep_and_prune(tmp_path: Path) -> None:
    for e in range(1, 6):
        ckpt.save(tmp_path, f"epoch_{e:04d}.pth", _state(float(e)), {"epoch": e})
    (tmp_path / ".epoch_0006.pth.abc.tmp").write_bytes(b"half")
    assert ckpt.sweep_temp_files(tmp_path) == [".epoch_0006.pth.abc.tmp"]
    removed = ckpt.prune(tmp_path, keep=2)
    assert removed == ["epoch_0001.pth", "epoch_0002.pth", "epoch_0003.pth"]
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pth")) == ["epoch_0004.pth",
                                                                    "epoch_0005.pth"]
    assert ckpt.load_latest(tmp_path).state["model"]["w"][0, 0] == 5.0

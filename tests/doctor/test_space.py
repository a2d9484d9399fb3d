# SPDX-License-Identifier: MIT
"""Room for a run: a small /dev/shm and a full disk, with injected free-space readings; the
checkpoint estimate against the trainer's own parameter counts."""

from __future__ import annotations

import json
from pathlib import Path

from dinowm.config import build
from dinowm.doctor import space
from dinowm.schema import RunConfig, all_keys

MIB, GIB = 2**20, 2**30


def config(**values) -> RunConfig:
    return build({**{k: key.default for k, key in all_keys().items()}, **values})


def test_a_small_dev_shm_fails_against_the_workers(tmp_path: Path) -> None:
    cfg = config(**{"data.num_workers": 2})  # batch 32, 4 frames of 3x224x224 uint8
    per_worker, how = space.shm_estimate(cfg)
    assert per_worker == 4 * 32 * 4 * 3 * 224 * 224
    assert "4 batches × 32 samples × 4 frames of 3×224×224 uint8" in how
    docker_default = space.check_shm(cfg, tmp_path, lambda p: 64 * MIB)
    assert docker_default.status == "fail"
    assert "64.0 MiB free in" in docker_default.found and "147.0 MiB" in docker_default.found
    assert "--shm-size" in docker_default.fix and "data.num_workers" in docker_default.fix
    assert space.check_shm(cfg, tmp_path, lambda p: 200 * MIB).status == "warn"
    assert space.check_shm(cfg, tmp_path, lambda p: 8 * GIB).status == "ok"
    reference = space.shm_estimate(config(**{"perf.mode": "reference"}))[0]
    assert reference == 4 * per_worker  # transformed float32 frames
    assert space.check_shm(config(**{"data.num_workers": 0}), tmp_path,
                           lambda p: 0).status == "skipped"
    assert space.check_shm(cfg, tmp_path / "none", lambda p: 0).status == "skipped"
    # the feature cache's tokens travel too: always with cache_features=on, with auto on a GPU
    tokens = 4 * 32 * 4 * 196 * 384 * 2
    assert space.shm_estimate(cfg, gpu=True)[0] == per_worker + tokens
    assert space.shm_estimate(config(**{"data.cache_features": "on"}))[0] == per_worker + tokens
    assert space.shm_estimate(config(**{"data.cache_features": "off"}), gpu=True)[0] == per_worker


def test_a_full_disk_fails_against_the_checkpoints_kept(tmp_path: Path) -> None:
    cfg = config()  # keep_checkpoints = 3
    size, how = space.checkpoint_estimate(cfg)
    assert 340 * MIB < size < 350 * MIB and "30.3 M trained parameters" in how
    outputs = tmp_path / "outputs"  # not there yet: the free space of its parent counts
    full = space.check_disk(cfg, outputs, lambda p: 1 * GIB)
    assert full.status == "fail" and f"1.0 GiB free in {tmp_path}" in full.found
    assert "4 checkpoints (training.keep_checkpoints=3 + the one being written)" in full.found
    assert "training.keep_checkpoints" in full.fix
    assert space.check_disk(cfg, outputs, lambda p: 2 * GIB).status == "warn"
    assert space.check_disk(cfg, outputs, lambda p: 100 * GIB).status == "ok"


def test_a_larger_checkpoint_already_in_outputs_is_the_measure(tmp_path: Path) -> None:
    cfg = config()
    folder = tmp_path / "outputs" / "run1" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "epoch_0001.pth").write_bytes(b"x" * 1000)
    size = 2 * GIB  # a manifest names the committed size; a sparse file keeps the test cheap
    with open(folder / "epoch_0002.pth", "wb") as fh:
        fh.truncate(size)
    for name, n in (("epoch_0001.pth", 1000), ("epoch_0002.pth", size)):
        (folder / f"{name}.json").write_text(json.dumps({"size": n, "epoch": 1}))
    check = space.check_disk(cfg, tmp_path / "outputs", lambda p: 7 * GIB)
    assert check.status == "fail" and "8.0 GiB" in check.found
    assert str(folder / "epoch_0002.pth") in check.found

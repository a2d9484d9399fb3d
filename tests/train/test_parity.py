# SPDX-License-Identifier: MIT
"""The public code's data choices: statistics over all episodes, one fixed sample order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dinowm.config import with_values
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt
from dinowm.data.sampling import EpochSampler, public_order
from dinowm.data.datasets import build_datasets, split_episodes
from dinowm.train.mode import Mode
from tests.support.trainer import events, run_trainer
from tests.support.datasets import coded_tables, small, write_franka


def test_stats_from_all_are_the_public_loaders_numbers(tmp_path: Path) -> None:
    n, t_max, lengths = 5, 30, [30, 22, 5, 30, 27]  # episode 2 is too short for one slice
    g = torch.Generator().manual_seed(0)
    states, actions = torch.randn(n, t_max, 22, generator=g), torch.randn(n, t_max, 9, generator=g)
    actions[:, :, 4] = 0.25  # a constant column: its std is the 1e-6 alone
    for ep, length in enumerate(lengths):
        actions[ep, length:] = 1e6  # padding past the episode's length is never counted
    write_franka(tmp_path / "d", states, actions, lengths=lengths)
    _, _, stats, info = build_datasets(tmp_path / "d", stats_from="all", **small())
    assert info["skipped_episodes"] == [2]

    def public(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the public get_data_mean_std: valid steps of every episode, float32, std + 1e-6
        rows = torch.vstack([data[ep, :length] for ep, length in enumerate(lengths)])
        return torch.mean(rows, dim=0), torch.std(rows, dim=0) + 1e-6

    for kind, table in (("action", actions), ("proprio", states[..., :3])):
        mean, std = public(table)
        torch.testing.assert_close(torch.tensor(stats[f"{kind}_mean"], dtype=torch.float64), mean.double(),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(stats[f"{kind}_std"], dtype=torch.float64), std.double(),
                                   rtol=1e-5, atol=1e-7)
    assert any("action columns [4] are constant in the dataset" in w for w in info["warnings"])
    _, _, train_stats, _ = build_datasets(tmp_path / "d", stats_from="train", **small())
    assert train_stats != stats


def test_fixed_order_is_the_public_slicers_and_kept_every_epoch(tmp_path: Path) -> None:
    lengths, seed = [30, 25, 28, 30, 12], 3
    write_franka(tmp_path / "d", *coded_tables(5, 30), lengths=lengths)
    train, _, _, info = build_datasets(tmp_path / "d", split_ratio=0.8, **small())
    # The public TrajSlicerDataset: the split's episodes in randperm order, starts ascending,
    # np.random.permutation right after np.random.seed(training.seed).
    split = torch.randperm(5, generator=torch.Generator().manual_seed(42)).tolist()[:4]
    assert sorted(split) == info["train_episodes"] == split_episodes(5, 0.8, 42)[0]
    listed = [(ep, s) for ep in split for s in range(lengths[ep] - 6 + 1)]
    np.random.seed(seed)
    want = [tuple(row) for row in np.random.permutation(listed).tolist()]
    order = public_order(train, seed)
    assert [tuple(train.slices[i].tolist()) for i in order] == want

    sampler = EpochSampler(len(train), seed=seed, order=order)
    first = list(sampler)
    sampler.set_epoch(5)
    assert list(sampler) == first == order.tolist()
    sampler.set_epoch(2, start_index=17)  # a mid-epoch resume skips what it trained on
    assert list(sampler) == first[17:] and len(sampler) == len(first) - 17
    with pytest.raises(ValueError, match="order of shape"):
        EpochSampler(len(train) - 1, seed=seed, order=order)


@pytest.mark.parametrize("perf_mode, stats_from, shuffle, want", [
    ("fast", "auto", "auto", ("train", "epoch")),
    ("reference", "auto", "auto", ("all", "fixed")),
    ("reference", "train", "epoch", ("train", "epoch")),
    ("fast", "all", "fixed", ("all", "fixed")),
])
def test_auto_follows_perf_mode_and_an_explicit_value_wins(perf_mode, stats_from, shuffle,
                                                            want) -> None:
    cfg = with_values(RunConfig(), perf__mode=perf_mode, data__stats_from=stats_from,
                      data__shuffle=shuffle)
    mode = Mode.of(cfg)
    assert (mode.stats_from, mode.shuffle) == want


@pytest.mark.extended
def test_fixed_order_resumes_mid_epoch_exactly(tiny_run) -> None:
    common = ["training.epochs=2", "training.deterministic=true",
              "training.max_steps_per_epoch=3", "data.shuffle=fixed"]
    straight = tiny_run("straight", common)
    out = run_trainer(straight)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "statistics from train, fixed order" in out.stdout
    start = [e for e in events(straight) if e["type"] == "start"][0]
    assert (start["stats_from"], start["shuffle"]) == ("train", "fixed")

    # step 5 (the second of epoch 2) sleeps: a SIGTERM meanwhile stops the run after it
    stopped = tiny_run("stopped", common)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DINOWM_FAULT": "step:5:sleep=3"}
    proc = subprocess.Popen([sys.executable, "-m", "dinowm.train", "--run-dir", str(stopped)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ((stopped / "events.jsonl").exists() and any(
            e["type"] == "heartbeat" and e.get("step") == 4 for e in events(stopped))):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    manifest = ckpt.verify(stopped / "checkpoints" / ckpt.LATEST)
    assert (manifest["next_epoch"], manifest["step"]) == (2, 5) and manifest["samples_done"] > 0
    assert run_trainer(stopped).returncode == 0
    a, b = (torch.load(r / "checkpoints" / ckpt.LATEST, weights_only=True)["model"]
            for r in (straight, stopped))
    assert all(torch.equal(a[part][k], b[part][k]) for part in a for k in a[part])

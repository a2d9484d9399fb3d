# SPDX-License-Identifier: MIT
"""The per-epoch open-loop rollout metrics: the public loop's draws, both contexts, both splits,
equal to a direct computation one trajectory at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dinowm.data.datasets import prepare_frames, split_order
from dinowm.model.rollouts import public_picks, rollout_errors
from tests.support.trainer import make_run_dir, tiny_model


def _public_draws(order, lengths, num_hist, fs, count, seed):
    """The public training loop's sampling, spelled out: global numpy seed, redraw until the
    trajectory is long enough for a horizon above num_hist + 2."""
    np.random.seed(seed)
    min_h, out = num_hist + 2, []
    for _ in range(count):
        while True:
            traj = order[np.random.randint(0, len(order))]
            t = lengths[traj]
            start = np.random.randint(0, t - min_h * fs - 1) if t > min_h * fs + 1 else 0
            max_h = (t - start - 1) // fs
            if max_h > min_h:
                out.append((traj, start, np.random.randint(min_h, max_h + 1)))
                break
    return out


def test_picks_are_the_public_loops_draws_and_never_hang() -> None:
    order, lengths = [4, 0, 2, 1], [60, 40, 33, 90, 26]
    picks = public_picks(order, lengths, num_hist=3, frameskip=5, count=10, seed=0)
    assert [(p.episode, p.start, p.horizon) for p in picks] == \
        _public_draws(order, lengths, 3, 5, 10, 0)
    assert all(5 <= p.horizon and p.start + p.horizon * 5 < lengths[p.episode] for p in picks)
    assert picks == public_picks(order, lengths, 3, 5, 10, 0)  # the same every epoch
    assert public_picks(order, [30] * 5, 3, 5, 10, 0) == []  # none long enough: no endless loop
    longer = public_picks(order, lengths, 3, 5, 10, 0, min_horizon=8)
    assert longer and all(p.horizon >= 8 for p in longer)


def test_batched_rollout_errors_equal_one_trajectory_at_a_time(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, "r", [])
    cfg, model, train, val, stats, info = tiny_model(run_dir, tmp_path / "data")
    model.eval()
    train_order, _ = split_order(len(train.lengths), 0.9, 42)
    picks = public_picks(train_order, train.lengths, cfg.num_hist, cfg.frameskip, 6, seed=3,
                         min_horizon=2)
    assert len({p.horizon for p in picks}) > 1  # different horizons share one batch
    segments = [train.segment(p.episode, p.start, p.horizon) for p in picks]

    def to_device(b):
        return prepare_frames(b["visual"], cfg.model.img_size), b["proprio"], b["action"]

    batched = rollout_errors(model, segments, [p.horizon for p in picks], to_device,
                             contexts=(cfg.num_hist, 1))
    direct: dict[str, list[float]] = {}
    for seg, p in zip(segments, picks):
        visual, proprio, action = to_device({k: v[None] for k, v in seg.items()})
        for n in (cfg.num_hist, 1):
            errs = model.rollout_error(visual, proprio, action, horizon=p.horizon + 1 - n,
                                       context=n)
            for k, v in errs.items():
                direct.setdefault(k, []).append(float(v))
    assert set(batched) == {"z_visual_err_rollout", "z_proprio_err_rollout",
                            "z_visual_err_rollout_1framestart",
                            "z_proprio_err_rollout_1framestart"}
    for key, values in direct.items():
        assert batched[key] == pytest.approx(sum(values) / len(values), rel=1e-5)
    assert batched["z_visual_err_rollout"] != batched["z_visual_err_rollout_1framestart"]


def test_segment_is_the_rollouts_true_trajectory(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, "r", [])
    cfg, model, train, *_ = tiny_model(run_dir, tmp_path / "data")
    ep, fs = train.episodes[0], cfg.frameskip
    last = train.lengths[ep] - 1
    seg = train.segment(ep, last - 3 * fs, 3)  # ends on the episode's last frame
    assert seg["visual"].shape[0] == 4 and seg["action"].shape == (3, fs * train.actions.shape[-1])
    torch.testing.assert_close(seg["action"][1], train.actions[ep, last - 2 * fs : last - fs]
                               .reshape(-1))
    with pytest.raises(IndexError, match="does not fit"):
        train.segment(ep, last - 3 * fs + 1, 3)

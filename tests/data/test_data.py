# SPDX-License-Identifier: MIT
"""Dataset layer: readers, validation, slicing, split, stats, sampler, synthetic data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dinowm.errors import DataError
from dinowm.data.sampling import EpochSampler
from dinowm.data.datasets import build_datasets, prepare_frames, reference_sample, split_episodes
from dinowm.data.check import check_dataset
from dinowm.data.synth import write_synthetic_dataset
from tests.support.datasets import coded_tables, small, write_franka


def write_point_maze(root: Path, n=3, t_max=30, lengths=None, channels_last=True) -> Path:
    (root / "obses").mkdir(parents=True)
    states, actions = coded_tables(n, t_max, 4, 2)
    torch.save(states.double(), root / "states.pth")  # the public files are not all float32
    torch.save(actions, root / "actions.pth")
    lengths = lengths or [t_max] * n
    torch.save(torch.tensor(lengths), root / "seq_lengths.pth")
    for ep, length in enumerate(lengths):
        frames = (torch.arange(length) % 256).to(torch.uint8)[:, None, None, None]
        shape = (length, 8, 8, 3) if channels_last else (length, 3, 8, 8)
        torch.save(frames.expand(*shape).clone(), root / "obses" / f"episode_{ep:03d}.pth")
    return root


# ---- layouts -------------------------------------------------------------------------------

def test_franka_with_metadata_uses_episode_lengths(tmp_path):
    states, actions = coded_tables(3, 30)
    write_franka(tmp_path / "d", states, actions, lengths=[30, 25, 28])
    train, val, _, info = build_datasets(tmp_path / "d", split_ratio=0.5, **small())
    assert info["layout"] == "franka" and info["proprio_dim"] == 3
    assert len(train) + len(val) == (30 - 6 + 1) + (25 - 6 + 1) + (28 - 6 + 1)
    assert info["image_size"] == [8, 8] and info["sample_action_dim"] == 18


def test_franka_without_metadata_uses_t_max(tmp_path):
    states, actions = coded_tables(3, 30)
    write_franka(tmp_path / "d", states, actions)
    assert not (tmp_path / "d" / "metadata.pkl").exists()
    train, val, _, _ = build_datasets(tmp_path / "d", split_ratio=0.5, **small())
    assert len(train) + len(val) == 3 * 25


def test_franka_without_metadata_takes_each_length_from_its_frames(tmp_path):
    frames = [30, 22, 9, 27, 30, 12, 25, 28]
    states, actions = coded_tables(8, 30)
    for ep, n in enumerate(frames):  # padding past each episode's frames: never read
        states[ep, n:], actions[ep, n:] = float("nan"), float("nan")
    root = write_franka(tmp_path / "d", states, actions, frames=frames)
    assert not (root / "metadata.pkl").exists()
    train, val, stats, info = build_datasets(root, stats_from="all", **small())
    assert len(train) + len(val) == sum(n - 6 + 1 for n in frames)
    assert all(v == v for v in stats["action_mean"] + stats["proprio_std"])  # no NaN
    warning = ("no metadata.pkl: 6 of 8 episodes are shorter than the 30 timesteps of "
               "states.pth, each taken as long as its obses.pth: 1 (22 frames), 2 (9 frames), "
               "3 (27 frames), 5 (12 frames), 6 (25 frames), ...; states and actions past that "
               "are ignored")
    assert warning in info["warnings"]
    report = check_dataset(root, **small())
    assert report["problems"] == [] and warning in report["warnings"]
    assert report["lengths"] == {"min": 9, "mean": 22.88, "max": 30}


def test_franka_metadata_lengths_win_over_frame_counts(tmp_path):
    root = write_franka(tmp_path / "d", *coded_tables(3, 30), lengths=[30, 25, 28],
                        frames=[30, 30, 30])
    _, _, _, info = build_datasets(root, **small())
    assert info["lengths"]["min"] == 25
    assert not any("metadata.pkl" in w for w in info["warnings"])
    assert any("30 frames for an episode of length 25" in w for w in info["warnings"])


@pytest.mark.parametrize("channels_last", [True, False])
def test_point_maze_layout_proprio_is_whole_state(tmp_path, channels_last):
    root = write_point_maze(tmp_path / "pm", lengths=[30, 20, 26], channels_last=channels_last)
    train, val, _, info = build_datasets(root, normalize_action=False, **small())
    assert info["layout"] == "point_maze" and info["proprio_dim"] == 4
    assert len(train) + len(val) == 25 + 15 + 21
    s = train[3]
    ep, start = train.slices[3].tolist()
    assert s["visual"].shape == (3, 3, 8, 8)
    assert s["visual"][:, 0, 0, 0].tolist() == [start, start + 2, start + 4]
    assert torch.equal(s["proprio"][:, 3], torch.tensor([1000.0 * ep + 10 * (start + 2 * k) + 3
                                                         for k in range(3)]))


def test_n_rollouts_takes_the_first_episodes(tmp_path):
    states, actions = coded_tables(5, 20)
    write_franka(tmp_path / "d", states, actions)
    _, _, _, info = build_datasets(tmp_path / "d", n_rollouts=3, **small())
    assert info["episodes"] == 3
    assert sorted(info["train_episodes"] + info["val_episodes"]) == [0, 1, 2]
    with pytest.raises(DataError, match="n_rollouts=9 but .*holds 5 episodes"):
        build_datasets(tmp_path / "d", n_rollouts=9, **small())


# ---- slicing -------------------------------------------------------------------------------

def test_935_frame_episode_gives_916_starts(tmp_path):
    states, actions = coded_tables(1, 935)
    write_franka(tmp_path / "d", states, actions)
    train, val, _, info = build_datasets(tmp_path / "d", frameskip=5, num_hist=3, num_pred=1)
    assert len(train) == 935 - 20 + 1 == 916 and len(val) == 0
    assert train.slices[:, 1].max() == 915  # last start: 915 + 20 == 935


def test_sample_frames_proprio_and_actions_line_up(tmp_path):
    states, actions = coded_tables(2, 60)
    write_franka(tmp_path / "d", states, actions)
    train, _, _, _ = build_datasets(tmp_path / "d", normalize_action=False, frameskip=5,
                                    num_hist=3, num_pred=1)
    i = 17
    ep, start = train.slices[i].tolist()
    s = train[i]
    assert s["visual"].shape == (4, 3, 8, 8) and s["visual"].dtype == torch.uint8
    assert s["proprio"].shape == (4, 3) and s["action"].shape == (4, 45)
    for k in range(4):
        t = start + 5 * k
        assert int(s["visual"][k, 1, 4, 4]) == t
        assert s["proprio"][k].tolist() == [1000 * ep + 10 * t + c for c in range(3)]
        # the action of kept frame t: a[t], a[t+1], ..., a[t+4], each 9-D, concatenated
        want = [1000 * ep + 10 * (t + j) + d for j in range(5) for d in range(9)]
        assert s["action"][k].tolist() == want


def test_dataloader_batches_and_pickled_dataset_is_small(tmp_path):
    root = tmp_path / "s"
    write_synthetic_dataset(root, episodes=4, length=40, image_size=16)
    train, _, _, _ = build_datasets(root, **small())
    train[0]  # opens a memory-mapped episode; a pickled copy must not carry it
    assert len(pickle.dumps(train)) < 200_000
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=1,
                                         sampler=EpochSampler(len(train), seed=0))
    batch = next(iter(loader))
    assert batch["visual"].shape == (4, 3, 3, 16, 16) and batch["action"].shape == (4, 3, 18)


def test_prepare_frames_matches_the_whole_episode_reference(tmp_path):
    root = tmp_path / "s"
    write_synthetic_dataset(root, episodes=2, length=30, image_size=40)
    train, _, _, _ = build_datasets(root, **small())
    ours = prepare_frames(train[5]["visual"], 24)
    ref = reference_sample(train, 5, 24)["visual"]
    assert ours.shape == ref.shape == (3, 3, 24, 24)
    assert torch.allclose(ours, ref, atol=1e-4)
    assert ours.min() >= -1 and ours.max() <= 1


# ---- split, stats, sampler -----------------------------------------------------------------

def test_split_by_trajectory_is_18_2_deterministic_and_public():
    train, val = split_episodes(20, 0.9, 42)
    assert (len(train), len(val)) == (18, 2)
    assert (train, val) == split_episodes(20, 0.9, 42)
    assert sorted(train + val) == list(range(20))
    public = torch.randperm(20, generator=torch.Generator().manual_seed(42)).tolist()
    assert sorted(public[18:]) == val  # same episodes as the public code's split
    assert [len(p) for p in split_episodes(2, 0.9, 42)] == [1, 1]
    assert [len(p) for p in split_episodes(5, 1.0, 0)] == [4, 1]


def test_stats_come_from_the_training_split_only(tmp_path):
    n, t_max = 6, 30
    _, val_eps = split_episodes(n, 0.5, 42)
    g = torch.Generator().manual_seed(0)
    states = torch.randn(n, t_max, 22, generator=g)
    actions = torch.randn(n, t_max, 9, generator=g)
    actions[val_eps] += 1000.0  # would drag the mean far from 0 if val were included
    states[val_eps, :, :3] -= 500.0
    write_franka(tmp_path / "d", states, actions)
    train, val, stats, info = build_datasets(tmp_path / "d", split_ratio=0.5, **small())
    assert info["val_episodes"] == val_eps
    assert max(abs(m) for m in stats["action_mean"]) < 1.0
    assert max(abs(m) for m in stats["proprio_mean"]) < 1.0
    rows = train.actions[info["train_episodes"]].reshape(-1, 9)
    assert rows.mean(0).abs().max() < 1e-4 and (rows.std(0) - 1).abs().max() < 1e-3
    assert stats["action_std"][0] == pytest.approx(float(actions[info["train_episodes"], :, 0]
                                                         .std()) + 1e-6, rel=1e-5)


def test_stats_ignore_padding_and_can_be_restored_or_disabled(tmp_path):
    states, actions = coded_tables(4, 30)
    actions[0, 20:] = 1e6  # padding past episode 0's length (20)
    write_franka(tmp_path / "d", states, actions, lengths=[20, 30, 30, 30])
    _, _, stats, _ = build_datasets(tmp_path / "d", **small())
    assert max(stats["action_mean"]) < 5000
    _, _, ident, _ = build_datasets(tmp_path / "d", normalize_action=False, **small())
    assert ident["action_std"] == [1.0] * 9 and ident["proprio_mean"] == [0.0] * 3
    restored = {**ident, "action_mean": [1.0] * 9}
    train, _, got, _ = build_datasets(tmp_path / "d", stats=restored, **small())
    assert got == restored
    ep, start = train.slices[0].tolist()
    assert float(train[0]["action"][0, 0]) == float(actions[ep, start, 0]) - 1.0
    with pytest.raises(DataError, match="action_mean has 2 values but the dataset has 9"):
        build_datasets(tmp_path / "d", stats={**ident, "action_mean": [0.0, 0.0]}, **small())


def test_sampler_reshuffles_each_epoch_reproducibly_and_resumes():
    s = EpochSampler(50, seed=0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == sorted(e1) == list(range(50)) and e0 != e1
    again = EpochSampler(50, seed=0, epoch=1)
    assert list(again) == e1
    assert list(EpochSampler(50, seed=0, epoch=1, start_index=7)) == e1[7:]
    resumed = EpochSampler(50, seed=0)
    resumed.load_state_dict({**s.state_dict(), "start_index": 30})
    assert list(resumed) == e1[30:] and len(resumed) == 20
    with pytest.raises(DataError, match="same data"):
        EpochSampler(49, seed=0).load_state_dict(s.state_dict())


# ---- refusing bad data ---------------------------------------------------------------------

def test_nan_action_is_refused_naming_file_episode_timestep_column(tmp_path):
    write_synthetic_dataset(tmp_path / "s", episodes=5, length=30, image_size=8,
                            nan_at=(3, 17, 5))
    with pytest.raises(DataError) as e:
        build_datasets(tmp_path / "s", **small())
    msg = str(e.value)
    assert msg.startswith("actions.pth: NaN at episode 3, timestep 17, column 5 (1 non-finite")
    assert "\n" not in msg and "clean or drop" in msg


def test_inf_state_is_refused_and_padding_is_not_checked(tmp_path):
    states, actions = coded_tables(3, 30)
    states[1, 4, 2] = float("inf")
    states[2, 9, 0] = float("-inf")
    actions[0, 25] = float("nan")  # past episode 0's length: never read
    write_franka(tmp_path / "d", states, actions, lengths=[20, 30, 30])
    with pytest.raises(DataError, match=r"states\.pth: \+Inf at episode 1, timestep 4, column 2 "
                                        r"\(2 non-finite values in total, in episodes 1, 2\)"):
        build_datasets(tmp_path / "d", **small())


def test_missing_files_are_named(tmp_path):
    states, actions = coded_tables(3, 30)
    root = write_franka(tmp_path / "d", states, actions)
    (root / "000001" / "obses.pth").unlink()
    with pytest.raises(DataError, match=r"000001/obses\.pth is missing; expected uint8"):
        build_datasets(root, **small())
    (root / "actions.pth").unlink()
    with pytest.raises(DataError, match=r"actions\.pth is missing; expected float32 \(N, T_max"):
        build_datasets(root, **small())
    with pytest.raises(DataError, match="does not exist"):
        build_datasets(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the dataset layout"):
        build_datasets(tmp_path / "empty")


def test_wrong_shapes_are_refused(tmp_path):
    states, actions = coded_tables(3, 30)
    root = write_franka(tmp_path / "d", states, actions)
    torch.save(states[:, :, 0], root / "states.pth")
    with pytest.raises(DataError, match=r"states\.pth: shape \(3, 30\), expected a 3-D tensor"):
        build_datasets(root, **small())
    torch.save(states, root / "states.pth")
    torch.save(actions[:2], root / "actions.pth")
    with pytest.raises(DataError, match=r"actions\.pth: shape \(2, 30, 9\) does not match"):
        build_datasets(root, **small())
    torch.save(actions, root / "actions.pth")
    torch.save(torch.zeros(30, 8, 8, dtype=torch.uint8), root / "000002" / "obses.pth")
    with pytest.raises(DataError, match=r"000002/obses\.pth: shape \(30, 8, 8\), expected uint8"):
        build_datasets(root, **small())
    torch.save(torch.zeros(12, 8, 8, 3, dtype=torch.uint8), root / "000002" / "obses.pth")
    assert build_datasets(root, **small())[3]["lengths"]["min"] == 12  # no metadata.pkl
    with open(root / "metadata.pkl", "wb") as f:  # which says episode 2 is 30 frames long
        pickle.dump({"episode_lengths": [30, 30, 30]}, f)
    with pytest.raises(DataError, match="12 frames for an episode of length 30"):
        build_datasets(root, **small())


def test_short_episodes_skipped_or_all_refused(tmp_path):
    states, actions = coded_tables(4, 40)
    write_franka(tmp_path / "d", states, actions, lengths=[40, 19, 20, 40])
    train, val, _, info = build_datasets(tmp_path / "d", frameskip=5, num_hist=3, num_pred=1,
                                         split_ratio=0.5)
    assert info["skipped_episodes"] == [1]  # 19 < 20; 20 frames still give one slice
    assert len(train) + len(val) == 21 + 1 + 21
    assert any("skipping 1 of 4 episodes" in w for w in info["warnings"])
    with pytest.raises(DataError, match="all 4 episodes are too short .* longest has 40 frames, "
                                        "a slice spans .* = 45"):
        build_datasets(tmp_path / "d", frameskip=15, num_hist=2, num_pred=1)


def test_metadata_pickle_must_be_plain(tmp_path):
    states, actions = coded_tables(2, 30)
    root = write_franka(tmp_path / "d", states, actions, lengths=[30, 28])
    with open(root / "metadata.pkl", "wb") as f:
        pickle.dump({"episode_lengths": [np.int64(30), np.int64(28)]}, f)
    assert build_datasets(root, **small())[3]["lengths"]["min"] == 28
    with open(root / "metadata.pkl", "wb") as f:
        pickle.dump({"episode_lengths": [30, 28], "hook": Path("x")}, f)
    with pytest.raises(DataError, match="not a plain dict of lists of ints"):
        build_datasets(root, **small())


def test_check_dataset_reports_everything_without_raising(tmp_path):
    write_synthetic_dataset(tmp_path / "s", episodes=4, length=30, image_size=8, nan_at=(2, 5, 8))
    (tmp_path / "s" / "000003" / "obses.pth").unlink()
    report = check_dataset(tmp_path / "s", frameskip=2, num_hist=2, num_pred=1)
    assert report["layout"] == "franka" and report["episodes"] == 4
    assert (report["state_dim"], report["action_dim"], report["proprio_dim"]) == (22, 9, 3)
    assert report["image"] == {"shape": [8, 8, 3], "dtype": "uint8", "channels_last": True}
    nf = report["non_finite"]["actions.pth"]
    assert (nf["count"], nf["episode"], nf["timestep"], nf["column"]) == (1, 2, 5, 8)
    assert report["non_finite"]["states.pth"]["count"] == 0
    assert len(report["ranges"]["action"]["min"]) == 9
    assert len(report["ranges"]["proprio"]["max"]) == 3
    assert report["slices_per_episode"] == [n - 6 + 1 for n in _lengths(tmp_path / "s")]
    assert len(report["problems"]) == 2
    assert any("NaN at episode 2" in p for p in report["problems"])
    assert any("000003/obses.pth is missing" in p for p in report["problems"])
    assert check_dataset(tmp_path / "nowhere")["problems"][0].endswith("check data.path")


def _lengths(root: Path) -> list[int]:
    with open(root / "metadata.pkl", "rb") as f:
        return pickle.load(f)["episode_lengths"]


# ---- synthetic data ------------------------------------------------------------------------

def test_synthetic_dataset_loads_and_its_dynamics_are_learnable(tmp_path):
    info = write_synthetic_dataset(tmp_path / "s", episodes=6, length=60, image_size=16)
    train, val, _, binfo = build_datasets(tmp_path / "s", **small())
    assert binfo["state_dim"] == 22 and binfo["action_dim"] == 9 and len(val) > 0
    states = torch.load(tmp_path / "s" / "states.pth").double()
    actions = torch.load(tmp_path / "s" / "actions.pth").double()
    x, y = [], []
    for ep, n in enumerate(info["lengths"]):
        x.append(torch.cat([states[ep, : n - 1], actions[ep, : n - 1],
                            torch.ones(n - 1, 1)], dim=1))
        y.append(states[ep, 1:n, :3])
    x, y = torch.cat(x), torch.cat(y)
    fit = torch.linalg.lstsq(x, y).solution
    residual = (x @ fit - y).pow(2).mean().sqrt()
    motion = (y - x[:, :3]).pow(2).mean().sqrt()  # how far the ee moves per step
    assert residual < 0.01 * motion
    frames = torch.load(tmp_path / "s" / "000000" / "obses.pth")
    assert frames.dtype == torch.uint8 and frames.shape == (info["lengths"][0], 16, 16, 3)
    assert (frames[1:] != frames[:-1]).any()  # the scene moves


def test_synthetic_dataset_is_deterministic_and_atomic(tmp_path):
    first = write_synthetic_dataset(tmp_path / "a", episodes=3, length=20, image_size=8, seed=7)
    write_synthetic_dataset(tmp_path / "b", episodes=3, length=20, image_size=8, seed=7)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert len(files) == 3 + 3
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    write_synthetic_dataset(tmp_path / "c", episodes=3, length=20, image_size=8, seed=8)
    other, same = ((tmp_path / d / "actions.pth").read_bytes() for d in "ca")
    assert other != same
    assert all(19 <= n <= 20 for n in first["lengths"])  # 5% variation
    with pytest.raises(DataError, match="already exists"):
        write_synthetic_dataset(tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no tmp leftovers

# SPDX-License-Identifier: MIT
"""One run on several ranks (torchrun, gloo on the CPU): the split, one writer, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dinowm import faults, rundir
from dinowm.train import checkpoint as ckpt
from dinowm.data.sampling import EpochSampler, plan_steps, rank_share, shard_batches
from dinowm.train.dist import RankBeat
from tests.support.trainer import events, run_trainer


def _torchrun(run_dir: Path, env: dict[str, str] | None = None,
              nproc: int = 2) -> subprocess.Popen[str]:
    """The supervisor's launch of a run on `nproc` ranks, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", "dinowm.train",
         "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _run2(run_dir: Path, env: dict[str, str] | None = None) -> str:
    proc = _torchrun(run_dir, env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def _weights(run_dir: Path, optim: bool = True) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / ckpt.LATEST, weights_only=True)
    flat = {}
    for part, sd in state["model"].items():
        flat.update({f"{part}.{k}": v for k, v in sd.items()})
    for name, sd in state["optim"].items() if optim else ():
        for pid, s in sd["state"].items():
            flat.update({f"optim.{name}.{pid}.{k}": v for k, v in s.items()
                         if isinstance(v, torch.Tensor)})
    return flat


# -- the split of each step over ranks ------------------------------------------------------

@pytest.mark.parametrize(("n", "world", "accum", "micro"),
                         [(125, 2, 1, 4), (125, 3, 2, 2), (9, 4, 1, 2), (1, 2, 1, 4),
                          (17, 2, 3, 1), (64, 4, 2, 2)])
def test_every_sample_of_the_epoch_is_in_exactly_one_rank(n, world, accum, micro) -> None:
    order = EpochSampler(n, seed=3).permutation(0).tolist()
    plans = [plan_steps(order, micro, accum, world, r) for r in range(world)]
    assert len({len(p) for p in plans}) == 1  # every rank takes part in every step
    seen: list[int] = []
    for step in zip(*plans):
        assert len({s.n for s in step}) == 1  # all ranks weight by the same global count
        shares = [0 if s.standin else sum(map(len, s.batches)) for s in step]
        assert sum(shares) == step[0].n and max(shares) - min(shares) <= 1  # the tail: even
        for s in step:
            assert 1 <= len(s.batches) <= accum and all(len(b) <= micro for b in s.batches)
            if s.standin:  # an empty share runs one sample with loss weight 0
                assert len(s.batches) == 1 and len(s.batches[0]) == 1
            else:
                seen += [i for b in s.batches for i in b]
    assert sorted(seen) == list(range(n)) and len(seen) == n


def test_one_rank_is_the_order_in_micro_batches_and_a_resume_continues_the_plan() -> None:
    order = list(range(23))
    one = plan_steps(order, micro=3, grad_accum=2)
    assert [s.batches for s in one] == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]],
                                        [[12, 13, 14], [15, 16, 17]], [[18, 19, 20], [21, 22]]]
    assert [s.n for s in one] == [6, 6, 6, 5]
    for world in (1, 2, 3):
        size = 2 * world * 2
        for rank in range(world):
            whole = plan_steps(order, 2, 2, world, rank)
            assert plan_steps(order[size:], 2, 2, world, rank) == whole[1:]  # mid-epoch resume


def test_shares_and_val_shards_cover_everything_once() -> None:
    for n in range(0, 12):
        for world in (1, 2, 3, 5):
            bounds = [rank_share(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            shards = [i for r in range(world) for b in shard_batches(n, 2, world, r) for i in b]
            assert shards == list(range(n))


# -- the rank's heartbeat file and the rank filter of faults --------------------------------

def test_rank_heartbeat_names_the_collective_while_inside(tmp_path: Path) -> None:
    beat = RankBeat(tmp_path, 1, 2)
    beat.beat(step=4, epoch=1, phase="train")
    with beat.collective("stop_flags"):
        inside = rundir.read_rank_heartbeats(tmp_path)[1]
    after = rundir.read_rank_heartbeats(tmp_path)[1]
    assert inside["collective"] == "stop_flags" and "collective" not in after
    assert {k: after[k] for k in ("rank", "pid", "world", "step", "epoch", "phase")} == \
        {"rank": 1, "pid": os.getpid(), "world": 2, "step": 4, "epoch": 1, "phase": "train"}
    assert abs(after["t"] - time.time()) < 60
    assert [p.name for p in (tmp_path / rundir.RANKS).iterdir()] == ["rank1.json"]  # no tmp


def test_a_fault_with_a_rank_fires_in_that_rank_only(monkeypatch) -> None:
    monkeypatch.setenv("DINOWM_FAULT", "step:1:raise@1")
    for rank, fires in (("0", False), ("1", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setattr(faults, "_plan", None)
        monkeypatch.setattr(faults, "_counts", {})
        if fires:
            with pytest.raises(RuntimeError, match="injected"):
                faults.fault("step")
        else:
            faults.fault("step")


# -- runs on two gloo ranks ---------------------------------------------------------------

def test_two_ranks_train_like_one_with_the_same_global_batch(tiny_run) -> None:
    # 121 training samples, batch 8: the last step has 1 sample, rank 0's; rank 1 runs a
    # stand-in sample with loss weight 0.
    common = ["training.epochs=2", "training.deterministic=true", "model.predictor_dropout=0",
              "dist.timeout_s=60"]
    one = tiny_run("one", common)
    two = tiny_run("two", [*common, "dist.nproc_per_node=2"])
    assert run_trainer(one).returncode == 0
    _run2(two)
    # float32 sums of one batch of 8 against two of 4 plus the all-reduce differ in the last
    # bits; after 32 Adam steps the largest difference measured is 2.3e-7 of a tensor's
    # largest value. 1e-5 leaves a 40x margin and still catches a wrong split or weighting
    # (a lost or doubled sample changes the weights by more than 1e-3).
    a, b = _weights(one, optim=False), _weights(two, optim=False)
    assert a.keys() == b.keys()
    for key in a:
        scale = a[key].abs().max().clamp_min(1e-6)
        assert ((a[key] - b[key]).abs().max() / scale).item() < 1e-5, key
    # One writer: rank 0 wrote the events, the checkpoints, the samples and train.log's lines.
    evs = events(two)
    assert [e["type"] for e in evs].count("start") == 1
    assert [e["epoch"] for e in evs if e["type"] == "epoch"] == [1, 2]
    start = next(e for e in evs if e["type"] == "start")
    assert (start["world_size"], start["micro_batch"], start["batch_size"]) == (2, 4, 8)
    assert start["train_samples"] == 121
    last = [e for e in evs if e["type"] == "epoch"][-1]
    ref = [e for e in events(one) if e["type"] == "epoch"][-1]
    assert last["metrics"]["train_loss"] == pytest.approx(ref["metrics"]["train_loss"], rel=1e-5)
    assert last["metrics"]["val_loss"] == pytest.approx(ref["metrics"]["val_loss"], rel=1e-5)
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == sorted(
        p.name for p in (one / "checkpoints").iterdir())
    rank1 = (two / "ranks" / "rank1.log").read_text()
    assert "epoch 1 done" not in rank1 and "checkpoint" not in rank1
    beats = rundir.read_rank_heartbeats(two)
    assert sorted(beats) == [0, 1]
    assert all(b["phase"] == "completed" and b["step"] == 32 and b["world"] == 2
               for b in beats.values())
    assert beats[0]["pid"] != beats[1]["pid"]


def test_two_ranks_resume_exactly_after_a_stop_and_a_kill(tiny_run) -> None:
    # Dropout on: each rank's own RNG stream must come back from the checkpoint. Batch 16 of
    # 2 micro-batches of 4 per rank (no_sync on the first); 121 samples: 8 steps an epoch, the
    # last one's 9 samples split 5 (4 + 1) and 4.
    common = ["training.epochs=2", "training.deterministic=true", "dist.nproc_per_node=2",
              "dist.timeout_s=30", "training.num_reconstruct_samples=0",
              "training.batch_size=16", "training.grad_accum=2"]
    straight = tiny_run("straight", common)
    _run2(straight)
    broken = tiny_run("broken", common)
    # 1. SIGTERM to torchrun while step 3 sleeps: it reaches both ranks, which agree to stop
    #    after that step and checkpoint mid-epoch (the latest checkpoint, written by rank 0).
    proc = _torchrun(broken, {"DINOWM_FAULT": "global_step:3:sleep=5"})
    deadline = time.monotonic() + 120
    while not ((broken / "events.jsonl").exists() and any(
            e["type"] == "heartbeat" and e["step"] == 2 for e in events(broken))):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.1)
    # Rank 0's step-2 event comes before the ranks agree on stopping after step 2; a rank
    # slowed by a busy machine may still be there. Signal once both sleep in step 3.
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    end = events(broken)[-1]
    assert (end["type"], end["status"], end["step"]) == ("end", "stopped", 3), out[-3000:]
    manifest = ckpt.verify(broken / "checkpoints" / ckpt.LATEST)
    assert (manifest["next_epoch"], manifest["samples_done"]) == (1, 48)
    saved = torch.load(broken / "checkpoints" / ckpt.LATEST, weights_only=True)
    assert len(saved["ranks"]) == 2 and not torch.equal(saved["ranks"][0]["rng"]["torch"],
                                                        saved["ranks"][1]["rng"]["torch"])
    # 2. Resumed mid-epoch, then rank 1 is SIGKILLed at step 12 (in epoch 2): rank 0's
    #    collective fails, torchrun ends the attempt.
    proc = _torchrun(broken, {"DINOWM_FAULT": "global_step:12:sigkill@1"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert ckpt.verify(broken / "checkpoints" / ckpt.LATEST)["next_epoch"] == 2
    # 3. Resumed from the end of epoch 1: the same weights, bit for bit, as without a break.
    _run2(broken)
    a, b = _weights(straight), _weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    evs = events(broken)
    assert [e["type"] for e in evs].count("start") == 3
    assert [e["epoch"] for e in evs if e["type"] == "epoch"] == [1, 2]
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(1, len(seqs) + 1))
    ends = [json.dumps(e) for e in evs if e["type"] == "end"]
    assert len(ends) == 2  # the stop and the completion; the killed attempt wrote none


@pytest.mark.extended
def test_a_failing_rank_records_its_error_in_its_heartbeat_not_in_events(tiny_run) -> None:
    run_dir = tiny_run("oom", ["dist.nproc_per_node=2", "dist.timeout_s=30"])
    proc = _torchrun(run_dir, {"DINOWM_FAULT": "global_step:2:oom@1"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    failed = rundir.read_rank_heartbeats(run_dir)[1]
    assert failed["phase"] == "failed" and failed["error"]["kind"] == "oom", out[-3000:]
    assert failed["error"]["exit_code"] == 3 and failed["step"] == 1
    # events.jsonl is rank 0's alone: its seq has no gap or repeat, and no oom in it
    evs = events(run_dir)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert not any(e["type"] == "error" and e["kind"] == "oom" for e in evs)

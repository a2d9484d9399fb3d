# SPDX-License-Identifier: MIT
"""A run on two gloo ranks under the real supervisor and torchrun: one record, every guarantee."""

from __future__ import annotations

import pytest

import json
import os
import signal
import time
from pathlib import Path

import torch

from dinowm import rundir
from tests.support.run_checks import DET, all_checkpoints_verify, epochs, final_weights
from tests.support.supervised import Project, tiny

TWO = ["dist.nproc_per_node=2", "dist.timeout_s=60"]
# Three processes per run on two busy cores: a step may pause for seconds. Only the stall tests
# use a tight floor (they look at the first stall incident).
CALM = "watchdog.heartbeat_floor_s=30"
TIGHT = 4.0


def two_ranks(project: Project, *extra: str, env: dict | None = None) -> dict:
    out = project.cli("run", *tiny(*TWO, *DET, CALM, "training.epochs=2",
                                   "training.max_steps_per_epoch=4", *extra), env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    return project.run_row()


@pytest.mark.extended
def test_two_ranks_complete_with_rank_0_the_one_writer(project: Project) -> None:
    run = two_ranks(project)
    assert run["status"] == "completed" and epochs(project, run["id"]) == [1, 2]
    folder = Path(run["run_dir"])
    events = [json.loads(x) for x in (folder / rundir.EVENTS).read_text().splitlines()]
    assert [e["type"] for e in events].count("start") == 1
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]
    rank1 = rundir.rank_log(folder, 1).read_text()
    assert "epoch 1 done" not in rank1 and "checkpoint" not in rank1
    beats = rundir.read_rank_heartbeats(folder)
    assert sorted(beats) == [0, 1] and {b["world"] for b in beats.values()} == {2}
    all_checkpoints_verify(run)
    show = project.cli("show", run["id"]).stdout
    assert "2 (torchrun, DistributedDataParallel on cpu)" in show
    assert project.cli("export-log", "log.md").returncode == 0
    log = (project.root / "log.md").read_text()
    assert "| **Ranks** | 2 (torchrun, DistributedDataParallel, cpu) |" in log  # hardware
    assert "DistributedDataParallel: 2 ranks (torchrun), cpu; training.batch_size 8 is the " \
        "global batch." in log  # architecture


def test_sigkill_of_rank_1_resumes_the_group_and_ends_bit_identical(project: Project,
                                                                    tmp_path: Path) -> None:
    straight = final_weights(two_ranks(project))
    env = {"DINOWM_FAULT": "global_step:6:sigkill@1", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    run = two_ranks(project, env=env)
    assert run["status"] == "completed" and run["attempts"] == 2
    (crash,) = project.incidents(run["id"], "crash")
    assert crash["summary"].startswith("rank 1 (pid ") and "killed by SIGKILL" in crash["summary"]
    assert crash["details"]["rank"] == 1
    assert epochs(project, run["id"]) == [1, 2]
    resumed = final_weights(run)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    shown = project.cli("show", run["id"])  # gloo's '[/__w/.../pair.cc:545] ...' is text
    assert shown.returncode == 0, shown.stderr[-2000:]
    summaries = [r["summary"] for r in project.rows(
        "select summary from incidents where run_id = ?", run["id"])]
    assert any("[/" in s for s in summaries), summaries
    assert all(s[:40] in shown.stdout for s in summaries), shown.stdout


def test_a_rank_stopped_by_hand_is_named_before_the_collective_times_out(
    project: Project,
) -> None:
    """SIGSTOP of rank 1 from outside, mid-training: the incident's subject is rank 1, found
    within the stall limit plus 10 s of the freeze (the collective's own timeout, 60 s, never
    fires), rank 0 named as waiting for it; the run resumes and completes, each epoch once."""
    out = project.cli("run", *tiny(*TWO, *DET, f"watchdog.heartbeat_floor_s={TIGHT}",
                                   "training.epochs=2", "training.max_steps_per_epoch=8"),
                      "--detach")
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    deadline = time.monotonic() + 180
    while True:  # rank 1 training its third step
        beat = rundir.read_rank_heartbeats(Path(run["run_dir"])).get(1, {})
        if beat.get("phase") == "train" and (beat.get("step") or 0) >= 3:
            break
        assert time.monotonic() < deadline, "rank 1 never reached step 3"
        time.sleep(0.05)
    os.kill(beat["pid"], signal.SIGSTOP)
    stopped_at = time.time()
    project.wait_for("select id from runs where id = ? and status in ('completed', 'failed')",
                     run["id"], timeout=240)
    run = project.run_row()
    assert run["status"] == "completed" and epochs(project, run["id"]) == [1, 2]
    stall = project.incidents(run["id"], "stall")[0]
    assert stall["t"] - stopped_at <= stall["details"]["verdict"]["limit_s"] + 10
    assert stall["summary"].startswith(
        f"stall: rank 1 (pid {beat['pid']}) stopped (SIGSTOP), silent "), stall["summary"]
    assert "rank 0 (pid " in stall["summary"] and " waiting for it in " in stall["summary"]
    assert "lagging" not in stall["summary"]
    assert stall["details"]["silent_rank"] == 1 and stall["details"]["waiting_ranks"] == [0]
    assert not project.incidents(run["id"], "exception")  # no collective timed out
    by_rank = {r["rank"]: r for r in stall["details"]["ranks"]}
    assert by_rank[1]["process"]["state"] == "T"
    assert all(r["stacks"] for r in by_rank.values()), [r["stacks_note"] for r in by_rank.values()]


def test_rank_1_hung_in_validation_while_rank_0_waits_for_it(project: Project,
                                                              tmp_path: Path) -> None:
    """A rank that hangs where its own phase has a long budget (validation: minutes) is still
    found once rank 0 has waited for it longer than a step may take."""
    env = {"DINOWM_FAULT": "validation:1:hang@1", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    run = two_ranks(project, f"watchdog.heartbeat_floor_s={TIGHT}", "watchdog.validation_s=600",
                    env=env)
    assert run["status"] == "completed" and epochs(project, run["id"]) == [1, 2]
    stall = project.incidents(run["id"], "stall")[0]
    by_rank = {r["rank"]: r for r in stall["details"]["ranks"]}
    assert stall["details"]["silent_rank"] == 1 and by_rank[0]["collective"]
    assert stall["details"]["verdict"]["phase"] == "validation"
    assert stall["details"]["verdict"]["age_s"] < 60  # not the validation budget's 600 s
    assert stall["summary"].startswith("stall: rank 1 (pid ") and " hung, " in stall["summary"]
    assert f"waiting for it in {by_rank[0]['collective']}" in stall["summary"]
    assert "faults.py" in (by_rank[1]["stuck_frame"] or {}).get("text", "")  # where it hangs


def test_cuda_oom_on_rank_1_halves_the_per_rank_micro_batch(project: Project,
                                                            tmp_path: Path) -> None:
    env = {"DINOWM_FAULT": "step:3:oom@1", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    run = two_ranks(project, "watchdog.oom=halve", env=env)
    assert run["status"] == "completed" and run["attempts"] == 2
    assert (run["micro_batch"], run["grad_accum"], run["batch_size"]) == (2, 2, 8)
    (policy,) = project.incidents(run["id"], "oom_policy")
    assert "micro-batch 4 → 2" in policy["summary"]


def test_stop_and_resume_a_two_rank_run(project: Project) -> None:
    out = project.cli("run", *tiny(*TWO, "training.epochs=200"), "--detach")
    assert out.returncode == 0, out.stderr
    run_id = project.run_row()["id"]
    project.wait_for("select 1 from runs where id = ? and step >= 2", run_id)
    out = project.cli("stop", run_id, "--wait")
    run = project.run_row()
    assert run["status"] == "stopped", out.stdout + out.stderr
    target = run["epoch"] + 1
    out = project.cli("resume", run_id, f"training.epochs={target}",
                      "training.max_steps_per_epoch=2")
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    assert run["status"] == "completed" and epochs(project, run_id) == \
        list(range(1, target + 1))


def test_the_collective_timeout_fails_before_the_watchdog(project: Project,
                                                          tmp_path: Path) -> None:
    env = {"DINOWM_FAULT": "step:6:hang@1", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    run = two_ranks(project, "dist.timeout_s=5", "watchdog.heartbeat_floor_s=120", env=env)
    assert run["status"] == "completed" and epochs(project, run["id"]) == [1, 2]
    assert not project.incidents(run["id"], "stall")
    (error,) = project.incidents(run["id"], "exception")  # torch's own message, rank 0's
    assert "Timed out waiting 5000ms" in error["summary"]
    (where,) = project.incidents(run["id"], "ranks")
    # rank 0 failed first, on the timeout; the rank it waited for leads the record
    assert where["summary"].startswith("rank 1 (pid ") and \
        "while rank 0 waited for it in grad_allreduce; rank 0 (pid " in where["summary"]
    beats = {b["rank"]: b for b in where["details"]["ranks"]}
    assert beats[0]["failed_in"] == "grad_allreduce"  # where rank 0 waited
    assert beats[1]["phase"] == "train" and not beats[1].get("collective")  # rank 1: before it
    assert "rank 0 at step" in where["summary"] and "failed in grad_allreduce" in where["summary"]

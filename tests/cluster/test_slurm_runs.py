# SPDX-License-Identifier: MIT
"""Runs on a real one-node Slurm cluster (tests/support/slurm.py): submitted with the real
`dinowm` command, watched from the "login node" (this process's runs.db) through squeue and the
shared run folder, never through the job's own index."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dinowm import rundir
from tests.support.login import LoginNode, epoch_lines
from tests.support.nvml_fake import UUIDS, FakeGPU, write_pynvml
from tests.support.run_checks import all_checkpoints_verify, epochs
from tests.support.slurm import Cluster
from tests.support.supervised import Project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a busy CI machine


@pytest.fixture
def login(project: Project, slurm_cluster: Cluster) -> LoginNode:
    return LoginNode(project, slurm_cluster)


def test_a_two_rank_run_completes_and_the_login_node_records_it(login: LoginNode,
                                                                tmp_path: Path) -> None:
    # NVML cannot run here: the job's supervisor samples a fake GPU (its real telemetry code)
    nvml = write_pynvml(tmp_path / "nvml", [FakeGPU(UUIDS[0])])
    env = {"PYTHONPATH": os.pathsep.join([str(nvml), os.environ.get("PYTHONPATH", "")]),
           "DINOWM_FAULT": "global_step:*:sleep=0.5"}  # epochs long enough to be sampled
    run = login.submit("training.epochs=3", "training.max_steps_per_epoch=3",
                       "telemetry.interval_s=0.2", env=env)
    job = run["slurm_job_id"]
    assert job and run["status"] == "pending" and run["slurm_state"] == "PENDING"
    script = (Path(run["run_dir"]) / rundir.SLURM_SCRIPT).read_text()
    assert "#SBATCH --signal=B:USR1@120" in script and "#SBATCH --requeue" in script
    assert f"--run {run['id']}" in script
    follow = login.project.popen("tail", run["id"], "-f")  # from the login node, until it ends
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["slurm_state"] == "COMPLETED", row
    assert row["attempts"] == 1 and row["epoch"] == 3
    tailed = follow.communicate(timeout=60)[0]
    assert follow.returncode == 0 and "epoch 3 done" in tailed, tailed[-2000:]
    assert tailed.rstrip().endswith(f"[run {run['id']} is completed]")
    assert epochs(login.project, run["id"]) == [1, 2, 3] and epoch_lines(run) == [1, 2, 3]
    states = [i["details"]["state"] for i in login.project.incidents(run["id"], "slurm")
              if "state" in i["details"]]
    assert states[0] == "PENDING" and "RUNNING" in states and states[-1] == "COMPLETED"
    assert states.index("RUNNING") < states.index("COMPLETED")
    assert ("running", "RUNNING") in login.seen
    beats = rundir.read_rank_heartbeats(Path(run["run_dir"]))
    assert sorted(beats) == [0, 1] and {b["world"] for b in beats.values()} == {2}
    # The job kept its own index: nothing but this project's runs.db on the login side, and the
    # job's record in its own journal, which `dinowm reindex` reads back too.
    assert (Path(run["run_dir"]) / rundir.JOB_RECORD).stat().st_size > 0
    all_checkpoints_verify(run)
    # The GPU as the job saw it, on the login node: samples every 5 s, and each epoch's summary
    (samples,) = login.project.rows("select count(*) n, max(temp_c) temp from telemetry "
                                    "where run_id = ?", run["id"])
    assert samples["n"] >= 2 and samples["temp"] is not None, samples
    assert all(e["max_gpu_temp_c"] is not None for e in login.project.rows(
        "select max_gpu_temp_c from epochs where run_id = ?", run["id"]))
    assert login.project.cli("export-log", "log.md").returncode == 0
    assert f"| **Slurm** | job {job} COMPLETED |" in (login.project.root / "log.md").read_text()
    show = login.project.cli("show", run["id"]).stdout
    assert f"job {job} COMPLETED" in show and "allocation 1 of Slurm job" in show
    (login.project.root / "runs.db").unlink()
    assert login.project.cli("reindex").returncode == 0
    again = login.project.rows("select * from runs where id = ?", run["id"])[0]
    assert again["status"] == "completed" and again["slurm_job_id"] == job
    assert epochs(login.project, run["id"]) == [1, 2, 3]


@pytest.mark.extended
def test_a_rank_killed_and_a_rank_stopped_inside_the_job_are_resumed_in_the_allocation(
        login: LoginNode, tmp_path: Path) -> None:
    # Rank 1 is SIGKILLed at step 3 (attempt 1), then SIGSTOPped at step 6 (attempt 2): it
    # runs under slurmstepd, not under the supervisor, so Slurm ends its step.
    env = {"DINOWM_FAULT": "global_step:3:sigkill@1,global_step:6:sigstop@1",
           "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    run = login.submit("training.epochs=2", "training.max_steps_per_epoch=4",
                       "watchdog.heartbeat_floor_s=6", env=env)
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["attempts"] >= 3, row
    assert row["slurm_job_id"] == run["slurm_job_id"] and not row["slurm_restarts"]
    (crash,) = login.project.incidents(run["id"], "crash")
    assert crash["summary"].startswith("rank 1 (pid ") and "SIGKILL" in crash["summary"]
    (ranks,) = login.project.incidents(run["id"], "ranks")
    assert "rank 1" in ranks["summary"]
    stall = next(i for i in login.project.incidents(run["id"], "stall")
                 if i["summary"].startswith("stall: rank 1 (pid "))  # the silent rank first
    by_rank = {r["rank"]: r for r in stall["details"]["ranks"]}
    assert by_rank[1]["process"]["state"] == "T" and "stopped (SIGSTOP)" in by_rank[1]["summary"]
    assert all(r["stacks"] for r in by_rank.values()), [r["stacks_note"] for r in by_rank.values()]
    kill = stall["details"]["kill"]
    assert kill["exited"] and "slurm_steps_left" not in kill, kill  # no step outlived it
    # The record has each epoch once. The log may say 'epoch 2 done' twice: the kill sends
    # SIGCONT before SIGTERM, so the stalled attempt can finish epoch 2 before it stops at a
    # step's end, and the next attempt trains that epoch's rest again from its checkpoint.
    assert epochs(login.project, run["id"]) == [1, 2]
    lines = epoch_lines(run)
    assert lines[0] == 1 and set(lines) == {1, 2} and lines[-1] == 2, lines


def test_a_failed_node_requeues_the_job_and_the_next_allocation_resumes(
        login: LoginNode) -> None:
    # The first allocation's steps take 2 s (36 s in all), so that the node fails under a
    # training trainer however busy the machine. Its slurmd lives on (the failure is declared),
    # so the test holds the requeued job, and release() lets it go once the failed
    # allocation's steps are gone: started beside them, Slurm would drain the node
    # ("Duplicate jobid").
    slow = {"DINOWM_FAULT": "global_step:*:sleep=2#1"}
    run = login.submit("training.epochs=6", "training.max_steps_per_epoch=3", env=slow, ranks=1)
    job = run["slurm_job_id"]
    login.poll(run["id"], lambda r: r["status"] == "running" and r["epoch"] >= 1)
    node = login.cluster.host
    login.cluster.run("scontrol", "update", f"nodename={node}", "state=down", "reason=test")
    login.cluster.hold_when_requeued(job)
    login.poll(run["id"], lambda r: r["status"] == "pending" and r["slurm_restarts"] == 1)
    # repaired (unless slurmd's next registration already returned it: ReturnToService=2)
    login.cluster.run("scontrol", "update", f"nodename={node}", "state=resume", check=False)
    login.cluster.release(job)
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["slurm_restarts"] == 1, (row, login.seen)
    assert row["slurm_job_id"] == run["slurm_job_id"]
    assert "DUE TO NODE FAILURE" in (Path(run["run_dir"]) / rundir.SLURM_OUT).read_text()
    assert epochs(login.project, run["id"]) == list(range(1, 7))
    assert epoch_lines(run) == list(range(1, 7))
    log = (Path(run["run_dir"]) / rundir.LOG).read_text()
    assert "attempt 2: resuming from" in log

# SPDX-License-Identifier: MIT
"""Runs on two real Slurm nodes (tests/support/slurm.py: n1 at 127.0.0.1, n2 at 127.0.0.2, one
slurmd each): one rank per node through srun and torchrun's c10d rendezvous at n1's NodeAddr,
submitted with the real `dinowm` command and watched from the login node. One module fixture
serves every test; the file runs on its own pytest-xdist worker beside the one-node cluster files."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from dinowm import rundir
from tests.support.login import LoginNode, epoch_lines
from tests.support.run_checks import epochs
from tests.support.slurm import Cluster
from tests.support.supervised import Project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a busy CI machine

NODES = ["--nodes", "2", "dist.timeout_s=60"]  # one rank per node (dist.nproc_per_node=1)


@pytest.fixture
def login(project: Project, slurm_two_nodes: Cluster) -> LoginNode:
    return LoginNode(project, slurm_two_nodes)


def test_two_nodes_train_one_run_through_srun_and_c10d(login: LoginNode) -> None:
    run = login.submit("training.epochs=2", "training.max_steps_per_epoch=3", *NODES, ranks=1)
    job = run["slurm_job_id"]
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["slurm_state"] == "COMPLETED", row
    assert row["attempts"] == 1 and epochs(login.project, run["id"]) == [1, 2]
    assert epoch_lines(run) == [1, 2]
    (allocation,) = [i for i in login.project.incidents(run["id"], "slurm")
                     if i["summary"].startswith("allocation ")]
    assert allocation["summary"].endswith("started on n[1-2]"), allocation
    beats = rundir.read_rank_heartbeats(Path(run["run_dir"]))
    assert sorted(beats) == [0, 1] and {b["world"] for b in beats.values()} == {2}
    # the rendezvous at n1's NodeAddr, and a task of the trainer's step on each node
    out = (Path(run["run_dir"]) / rundir.SLURM_OUT).read_text()
    assert "attempt 1: nodes n1 at 127.0.0.1, n2 at 127.0.0.2; rendezvous at 127.0.0.1:" in out
    for node in ("n1", "n2"):
        assert f"StepId={job}.0" in login.cluster.log(f"slurmd-{node}"), node


def test_the_time_limit_requeues_and_a_rank_killed_on_n2_resumes_in_the_next_allocation(
        login: LoginNode) -> None:
    # Allocation 1 (a 2-minute limit; Slurm signals 40 to 70 s into it with signal_s = 50, see
    # tests/support/login.py): every step of attempt 1 sleeps 3 s, so the signal comes
    # mid-training; the job checkpoints mid-epoch and requeues itself. The test holds the
    # requeued job (pending, from the login node) and gives it 10 minutes. In allocation 2,
    # rank 1, on n2, is SIGKILLed at global step 28 (attempt 2; allocation 1 reaches 23 at
    # most), and attempt 3 resumes in the same allocation.
    login.signal_within_two_minutes()
    env = {"DINOWM_FAULT": "global_step:*:sleep=3#1,global_step:28:sigkill@1#2"}
    run = login.submit("training.epochs=8", "training.max_steps_per_epoch=4", *NODES,
                       "--time", "2", env=env, ranks=1)
    job = run["slurm_job_id"]
    login.cluster.hold_when_requeued(job)
    login.poll(run["id"], lambda r: r["status"] == "pending" and r["slurm_state"] == "PENDING")
    login.cluster.release(job, time_limit_min=10)
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["epoch"] == 8, (row, login.seen)
    assert row["slurm_job_id"] == job and row["slurm_restarts"] == 1
    allocations = [i["t"] for i in login.project.incidents(run["id"], "slurm")
                   if i["summary"].startswith("allocation ")]
    assert len(allocations) == 2 and row["attempts"] == 3, row
    # the time limit: checkpointed mid-epoch, the same job requeued, continued from there
    (requeue,) = login.project.incidents(run["id"], "requeue")
    assert "checkpointed at epoch" in requeue["summary"]
    # the killed rank named with its node, and resumed in its allocation (no requeue for it)
    crashes = login.project.incidents(run["id"], "crash")
    assert len(crashes) == 1, [c["summary"] for c in crashes]
    crash = crashes[0]
    assert crash["summary"].startswith("rank 1 (pid ") and (
        "on node n2 killed by SIGKILL" in crash["summary"]), crash["summary"]
    assert crash["details"]["node"] == "n2"
    (ranks,) = login.project.incidents(run["id"], "ranks")
    assert ranks["summary"].startswith("on node n2: rank 1 (pid "), ranks["summary"]
    (resume,) = login.project.incidents(run["id"], "resume")
    assert allocations[1] < crash["t"] < resume["t"]
    log = (Path(run["run_dir"]) / rundir.LOG).read_text()
    assert "attempt 2: resuming from" in log and "attempt 3: resuming from" in log
    assert epochs(login.project, run["id"]) == list(range(1, 9))
    assert epoch_lines(run) == list(range(1, 9))


def test_a_rendezvous_that_cannot_connect_fails_once_with_its_reason(login: LoginNode) -> None:
    # The rendezvous port on n1 is taken by another process (bound, not listening): n1's
    # torchrun cannot host the store. Slurm starts the job seconds after sbatch returns; the
    # port is known then (rdzv_port + (job id + attempt) % 1000) and taken long before torchrun
    # has imported torch.
    toml = login.project.root / "dinowm.toml"
    toml.write_text(toml.read_text().replace("rdzv_port = 29500", "rdzv_port = 21000"))
    started = time.monotonic()
    run = login.submit("training.epochs=2", "training.max_steps_per_epoch=3", *NODES, ranks=1)
    port = 21000 + (int(run["slurm_job_id"]) + 1) % 1000
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", port))
        row = login.done(run["id"], timeout=120)
    failed_after = time.monotonic() - started
    reason = row["exit_reason"]
    assert row["status"] == "failed" and failed_after < 60, (failed_after, row)
    assert reason == (
        f"rendezvous at 127.0.0.1:{port} (node n1) failed: port {port} on n1 is in use by "
        f"another process; set slurm.rdzv_port so that the ports from it to it + 999 are free "
        f"on the first node, or end what holds port {port} on n1 (not retried)"), reason
    assert row["attempts"] == 1
    (incident,) = login.project.incidents(run["id"], "rendezvous")
    assert incident["details"]["nodes"] == "n1" and incident["details"]["endpoint"].endswith(
        f":{port}")
    assert not login.project.incidents(run["id"], "resume")
    assert not login.project.incidents(run["id"], "crash")
    show = login.project.cli("show", run["id"]).stdout
    assert f"rendezvous at 127.0.0.1:{port} (node n1) failed" in show, show

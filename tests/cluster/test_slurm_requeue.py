# SPDX-License-Identifier: MIT
"""A run meets its Slurm time limit on a real one-node cluster (tests/support/slurm.py): it
checkpoints when Slurm signals, the same job is requeued, and its next allocation continues to
the very weights of a run trained straight through. Its own file, so that pytest-xdist runs it
beside the other cluster files (each worker its own cluster)."""

from __future__ import annotations

import pytest
import torch

from tests.support.login import TWO, LoginNode, epoch_lines
from tests.support.run_checks import DET, epochs, final_weights
from tests.support.slurm import Cluster
from tests.support.supervised import Project, tiny

pytestmark = [pytest.mark.slow, pytest.mark.extended, pytest.mark.timeout(600)]  # the 2-node test keeps the time limit in CI

@pytest.fixture
def login(project: Project, slurm_cluster: Cluster) -> LoginNode:
    login = LoginNode(project, slurm_cluster)
    login.signal_within_two_minutes()
    return login


def test_a_time_limit_checkpoints_requeues_and_ends_exactly(login: LoginNode) -> None:
    # The first allocation's steps sleep: its 84 s of training cannot end before the signal,
    # which checkpoints mid-epoch and requeues the job. The test holds the requeued job (seen
    # pending from the login node) and gives it 10 minutes, as an administrator might: the
    # second allocation trains at full speed to the end, met by no signal.
    slow = {"DINOWM_FAULT": "global_step:*:sleep=3#1"}
    common = ["training.epochs=7", "training.max_steps_per_epoch=4"]
    run = login.submit(*common, "--time", "2", env=slow)
    job = run["slurm_job_id"]
    login.poll(run["id"], lambda r: r["status"] == "running" and r["slurm_state"] == "RUNNING")
    login.cluster.hold_when_requeued(job)
    login.poll(run["id"], lambda r: r["status"] == "pending" and r["slurm_state"] == "PENDING")
    login.cluster.release(job, time_limit_min=10)
    row = login.done(run["id"])
    assert row["status"] == "completed", (row, login.seen)
    assert row["slurm_job_id"] == job and row["slurm_restarts"] == 1
    (requeue,) = login.project.incidents(run["id"], "requeue")
    assert "checkpointed at epoch" in requeue["summary"]
    assert row["attempts"] == 2
    assert epochs(login.project, run["id"]) == list(range(1, 8))
    assert epoch_lines(run) == list(range(1, 8))
    allocations = [i for i in login.project.incidents(run["id"], "slurm")
                   if i["summary"].startswith("allocation ")]
    assert len(allocations) == 2
    # Exact resume across allocations: the same weights as the run trained straight here.
    straight = login.project.cli("run", *tiny(*DET, *TWO, *common))
    assert straight.returncode == 0, straight.stdout[-2000:]
    expected = final_weights(login.project.run_row())
    got = final_weights(row)
    assert all(torch.equal(got[k], expected[k]) for k in expected)

# SPDX-License-Identifier: MIT
"""A Slurm run cancelled from outside dinowm, resumed as a new job, stopped with dinowm stop and
resumed again from the TUI's resume, then trained on this machine with --local: on a real
one-node cluster (tests/support/slurm.py), watched from the login node. Its own file, so that
pytest-xdist runs it beside the other cluster files (each worker its own cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.config import load_project
from tests.support.login import LoginNode, epoch_lines, log_count, wait_for_line
from tests.support.run_checks import all_checkpoints_verify, epochs
from tests.support.slurm import Cluster
from tests.support.supervised import Project
from tui import operations
from tui.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a busy CI machine

TERM = "SIGTERM: finishing this step"  # the trainer's own line when a stop reaches it


@pytest.fixture
def login(project: Project, slurm_cluster: Cluster) -> LoginNode:
    return LoginNode(project, slurm_cluster)


def test_scancel_from_outside_dinowm_stop_and_resume_slurm_across_three_jobs(
        login: LoginNode, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # One rank: srun starts the trainer itself, without torchrun. In each of the first two jobs
    # the trainer waits at a gate (a file this test creates) before a known step, so that what
    # the test does there cannot race the training, on however busy a machine; the test opens
    # the gate once the trainer has said that the stop reached it.
    gates = [tmp_path / "gate1", tmp_path / "gate2"]
    run = login.submit("training.epochs=8", "training.max_steps_per_epoch=4",
                       "watchdog.heartbeat_floor_s=600",  # parked at a gate is not a stall
                       env={"DINOWM_FAULT": f"global_step:6:gate={gates[0]}"}, ranks=1)
    first = run["slurm_job_id"]
    script = (Path(run["run_dir"]) / rundir.SLURM_SCRIPT).read_text()
    assert "1 rank per node" in script
    login.poll(run["id"], lambda r: r["status"] == "running" and r["epoch"] >= 1)
    # While the job lives, a resume (on Slurm, where the run is) is refused in one line and
    # changes nothing.
    for where in ((), ("--local",)):  # nor does --local start a second trainer here
        refused = login.project.cli("resume", run["id"], *where)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
        assert f"Slurm job {first}, RUNNING" in refused.stderr
    assert login.project.run_row()["slurm_job_id"] == first
    # scancel from outside dinowm, the trainer at step 6: cancelled, never left running
    login.cluster.run("scancel", first)
    wait_for_line(run, TERM, 1)
    gates[0].touch()
    row = login.done(run["id"])
    assert row["status"] == "cancelled" and row["slurm_state"] == "CANCELLED", row
    assert "scancel" in row["exit_reason"]
    assert not any(status == "running" and state == "CANCELLED" for status, state in login.seen)
    assert row["epoch"] == 1
    # `dinowm resume RUN` of a cluster run: a new job continues from the checkpoint (of step 6,
    # mid-epoch 2); dinowm stop, at step 10, checkpoints it
    out = login.project.cli("resume", run["id"],
                            env={"DINOWM_FAULT": f"global_step:10:gate={gates[1]}"})
    assert out.returncode == 0, out.stdout + out.stderr
    second = login.project.run_row()
    assert second["slurm_job_id"] != first and second["status"] == "pending"
    assert f"submitted as Slurm job {second['slurm_job_id']}" in out.stdout
    login.poll(run["id"], lambda r: r["status"] == "running" and r["epoch"] >= 2)
    terms = log_count(run, TERM)
    stop = login.project.popen("stop", run["id"])  # it waits for the job to end
    wait_for_line(run, TERM, terms + 1)
    gates[1].touch()
    said = stop.communicate(timeout=300)[0]
    assert stop.returncode == 0 and "asked to checkpoint and stop" in said, said
    row = login.done(run["id"])
    assert row["status"] == "stopped" and row["slurm_state"] == "COMPLETED", row
    assert row["epoch"] == 2 and login.project.incidents(run["id"], "requeue") == []
    # and a third job, from the TUI's resume (the same function), completes it: every epoch
    # once, each attempt resumed where the last ended
    for key, value in {**login.cluster.env, "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    services = Services(load_project(login.project.root / "dinowm.toml"),
                        spawn=_no_supervisor_here)
    third = operations.resume(services, run["id"], [])
    assert third["status"] == "pending" and third["slurm_job_id"] not in (
        first, second["slurm_job_id"])
    row = login.done(run["id"])
    assert row["status"] == "completed" and row["epoch"] == 8, row
    assert row["slurm_job_id"] == third["slurm_job_id"]
    assert epochs(login.project, run["id"]) == list(range(1, 9))
    assert epoch_lines(run) == list(range(1, 9))
    log = (Path(run["run_dir"]) / rundir.LOG).read_text()
    assert "attempt 2: resuming from" in log and "attempt 3: resuming from" in log
    all_checkpoints_verify(row)
    # --local trains the cluster run on this machine on purpose, and says so
    out = login.project.cli("resume", run["id"], "--local", "training.epochs=9")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    assert (f"run {run['id']} was a Slurm job (last job {third['slurm_job_id']}); training "
            f"it on this machine because of --local") in out.stdout
    row = login.project.run_row()
    assert row["status"] == "completed" and row["epoch"] == 9 and row["slurm_job_id"] is None
    assert epochs(login.project, run["id"]) == list(range(1, 10))
    assert epoch_lines(run) == list(range(1, 10))


def _no_supervisor_here(*args: object) -> int:
    raise AssertionError(f"a cluster run's resume started a supervisor on this machine: {args}")

# SPDX-License-Identifier: MIT
"""One run, one supervisor, one trainer: concurrent resumes, stops and lost detection racing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dinowm import rundir
from dinowm.backends import reconcile
from dinowm.backends import stop as request_stop
from dinowm.config import load_project
from dinowm.runs import prepare_resume
from dinowm.store import Store
from dinowm.supervise.procinfo import ProcessRef
from dinowm.supervise.supervisor import spawn_detached
from tests.support.supervised import Project, tiny

REFUSED = "is already supervised by pid"
# Each racer imports the CLI first, then waits for the go file: the five start within
# milliseconds of each other instead of a Python start-up apart.
RACER = """
import os, sys, time
from dinowm.cli import main
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.002)
main(args=sys.argv[2:], prog_name="dinowm")
"""


def race(project: Project, go: Path, *args: str, n: int = 5) -> list[tuple[int, str]]:
    """n real `dinowm` processes with the same arguments, released at once; (rc, output)."""
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(go), *args], cwd=project.root,
                              env=project.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(n)]
    time.sleep(2.0)  # let them import
    go.touch()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        results.append((proc.returncode, out))
    go.unlink()
    return results


def counts(project: Project, run_id: str) -> tuple[int, int]:
    """(attempts, resume incidents) of a run."""
    run = project.rows("select attempts from runs where id = ?", run_id)[0]
    resumes = project.rows("select count(*) as n from incidents where run_id = ? and "
                           "kind = 'resume'", run_id)[0]["n"]
    return run["attempts"], resumes


def test_five_resumes_at_once_train_the_run_once(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=3"))
    assert out.returncode == 0, out.stdout[-2000:]
    run = project.run_row()
    run_id, log = run["id"], Path(run["run_dir"]) / rundir.LOG
    go = project.root / "go"
    for round_, detach in enumerate([False, True, False], start=1):
        attempts, resumes = counts(project, run_id)
        target = 1 + round_
        args = ["resume", run_id, f"training.epochs={target}", *(["--detach"] * detach)]
        results = race(project, go, *args)
        won = [out for rc, out in results if rc == 0]
        refused = [out for rc, out in results if rc != 0]
        assert len(won) == 1, results
        assert len(refused) == 4 and all(REFUSED in out and "dinowm stop" in out
                                         and len(out.strip().splitlines()) == 1
                                         for out in refused), refused
        if detach:
            project.wait_for("select 1 from runs where id = ? and status = 'completed' and "
                             "epoch = ?", run_id, target, timeout=180)
        row = project.rows("select * from runs where id = ?", run_id)[0]
        assert row["status"] == "completed" and row["epoch"] == target
        assert counts(project, run_id) == (attempts + 1, resumes + 1)  # one attempt per round
        epochs = project.rows("select epoch from epochs where run_id = ? order by epoch", run_id)
        assert [e["epoch"] for e in epochs] == list(range(1, target + 1))
        lines = log.read_text().splitlines()
        for epoch in range(1, target + 1):
            assert sum(f"epoch {epoch} done" in line for line in lines) == 1, lines
        starts = [line for line in lines if line.startswith("--- attempt")]
        assert len(starts) == len(set(starts)) == attempts + 1
    assert not rundir.holder(rundir.supervisor_lock(run["run_dir"]))  # released at the end


def test_killed_supervisor_frees_the_run_at_once_and_a_hand_trainer_is_refused(
        project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=500"), "--detach")
    assert out.returncode == 0, out.stderr
    run = project.wait_for("select * from runs where step >= 1 and pid is not null")[0]
    run_dir = Path(run["run_dir"])
    held = rundir.holder(rundir.supervisor_lock(run_dir))
    assert held is not None and held.pid == run["supervisor_pid"]

    hand = subprocess.run([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                          env=project.env, capture_output=True, text=True, timeout=60)
    assert hand.returncode == 5, hand.stderr
    assert f"supervised by pid {run['supervisor_pid']}" in hand.stderr
    assert "train the run twice" in hand.stderr and len(hand.stderr.strip().splitlines()) == 1

    supervisor = ProcessRef(run["supervisor_pid"], run["supervisor_start"])
    os.kill(supervisor.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while supervisor.state() not in (None, "Z"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    t0 = time.monotonic()
    lock = rundir.RunLock.acquire(rundir.supervisor_lock(run_dir))  # no stale lock
    assert time.monotonic() - t0 < 0.4  # no retry: a contended acquire waits 0.5 s
    lock.release()
    # The orphan trainer still holds its own lock: a second trainer is refused.
    assert ProcessRef(run["pid"], run["pid_start"]).alive()
    hand = subprocess.run([sys.executable, "-m", "dinowm.train", "--run-dir", str(run_dir)],
                          env=project.env, capture_output=True, text=True, timeout=60)
    assert hand.returncode == 5 and f"already has a trainer (pid {run['pid']}" in hand.stderr

    target = project.run_row()["epoch"] + 3
    out = project.cli("resume", run["id"], f"training.epochs={target}",
                      "training.max_steps_per_epoch=3")
    assert out.returncode == 0, out.stdout[-2000:]
    assert not ProcessRef(run["pid"], run["pid_start"]).alive()  # the orphan was stopped
    final = project.run_row()
    assert final["status"] == "completed" and final["epoch"] >= target
    epochs = [r["epoch"] for r in project.rows("select epoch from epochs order by epoch")]
    assert epochs == list(range(1, final["epoch"] + 1))


def test_a_stop_before_the_supervisor_starts_is_kept(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=2"))
    assert out.returncode == 0
    run_id = project.run_row()["id"]
    proj = load_project(project.root / "dinowm.toml")
    with Store(proj.runs_db) as store:
        row, lock = prepare_resume(store, proj, run_id, ["training.epochs=50"])
        assert reconcile(store) == []  # its old supervisor is gone, but the run is held
        assert store.run(run_id)["status"] == "created"
        assert request_stop(store, run_id)["status"] == "stopping"
    spawn_detached(proj, run_id, lock)
    final = project.wait_for("select * from runs where id = ? and status not in "
                             "('created', 'running', 'resuming', 'stopping')", run_id)[0]
    assert final["status"] == "stopped" and final["epoch"] < 50, final
    out = project.cli("stop", run_id)
    assert out.returncode == 2 and "nothing to stop" in out.stderr
    assert project.run_row()["status"] == "stopped"  # a late stop changes nothing


def test_stop_racing_resume_ends_in_one_consistent_state(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=2"))
    assert out.returncode == 0
    run_id = project.run_row()["id"]
    resume = project.popen("resume", run_id, "training.epochs=40",
                           "training.max_steps_per_epoch=20")
    deadline = time.monotonic() + 120
    while True:  # stop as early as the record lets a stop through
        out = project.cli("stop", run_id)
        if out.returncode == 0:
            break
        assert "nothing to stop" in out.stderr and time.monotonic() < deadline
    text, _ = resume.communicate(timeout=180)
    final = project.run_row()
    assert final["status"] == "stopped" and final["epoch"] < 40, text[-2000:]
    assert final["pid"] is None and not rundir.holder(rundir.supervisor_lock(final["run_dir"]))
    reconcile(Store(project.root / "runs.db"))
    assert project.run_row()["status"] == "stopped"


def test_a_new_run_is_held_from_its_creation(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=50"), "--detach")
    assert out.returncode == 0, out.stderr
    run_id = project.run_row()["id"]
    out = project.cli("resume", run_id)  # at once: the supervisor may not have started yet
    assert out.returncode == 1 and REFUSED in out.stderr, out.stdout + out.stderr
    assert counts(project, run_id) == (project.run_row()["attempts"], 0)
    out = project.cli("stop", run_id, "--wait")
    assert out.returncode == 0 and project.run_row()["status"] == "stopped", out.stdout

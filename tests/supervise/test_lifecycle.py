# SPDX-License-Identifier: MIT
"""Detach, stop, resume, tail, and a supervisor that dies: the CLI around supervised runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from dinowm.supervise.procinfo import ProcessRef
from tests.support.supervised import Project, tiny


def test_detach_stop_resume_tail(project: Project) -> None:
    start = time.monotonic()
    out = project.cli("run", *tiny("training.epochs=30", "training.max_steps_per_epoch=5"),
                      "--detach", "--name", "bg", "--note", "first try")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 30 and "dinowm tail" in out.stdout
    run_id = project.run_row()["id"]
    project.wait_for("select 1 from runs where id = ? and step >= 2", run_id)
    out = project.cli("stop", run_id, "--wait")
    assert out.returncode == 0 and "stopped" in out.stdout, out.stdout + out.stderr
    run = project.run_row()
    assert run["status"] == "stopped" and run["epoch"] < 30
    assert project.cli("stop", run_id).returncode == 2  # nothing left to stop
    target = run["epoch"] + 2
    out = project.cli("resume", run_id, f"training.epochs={target}")
    assert out.returncode == 0, out.stdout[-2000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["epoch"] == target and run["name"] == "bg"
    epochs = [r["epoch"] for r in project.rows(
        "select epoch from epochs where run_id = ? order by epoch", run_id)]
    assert epochs == list(range(1, target + 1))
    out = project.cli("resume", run_id)
    assert out.returncode != 0 and "training.epochs=" in out.stderr
    out = project.cli("resume", run_id, f"training.epochs={target + 1}")
    assert out.returncode == 0 and project.run_row()["epoch"] == target + 1
    out = project.cli("resume", run_id, "model.predictor_depth=3")
    assert out.returncode == 2 and "cannot change on resume" in out.stderr
    out = project.cli("tail", run_id, "-n", "5")
    assert out.returncode == 0 and f"run completed at epoch {target + 1}" in out.stdout
    notes = project.rows("select text from notes where run_id = ?", run_id)
    assert notes == [{"text": "first try"}]


def test_a_stop_while_the_trainer_starts_is_a_stop_not_a_crash(project: Project) -> None:
    # The trainer sleeps before it imports torch, so SIGTERM still ends it at once: nothing of
    # the attempt to checkpoint, and no crash (the stop's own doing); a resume trains it all.
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=2"),
                      "--detach", env={"DINOWM_FAULT": "startup:1:sleep=60"})
    assert out.returncode == 0, out.stderr
    run_id = project.run_row()["id"]
    project.wait_for("select 1 from runs where id = ? and pid is not null", run_id)
    out = project.cli("stop", run_id, "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    row = project.run_row()
    assert row["status"] == "stopped" and row["epoch"] in (0, None), row
    assert "crash" not in row["exit_reason"] and "exit code" not in row["exit_reason"], row
    assert project.incidents(run_id, "crash") == [] and project.incidents(run_id, "resume") == []
    assert project.cli("resume", run_id).returncode == 0
    assert project.run_row()["status"] == "completed"


def test_dead_supervisor_marks_the_run_lost_and_resume_takes_over(project: Project) -> None:
    # Long enough that the orphan trainer still runs when the loss is noticed, on a busy machine.
    out = project.cli("run", *tiny("training.epochs=500"), "--detach")
    assert out.returncode == 0
    run = project.wait_for("select * from runs where step >= 2 and pid is not null")[0]
    os.kill(run["supervisor_pid"], signal.SIGKILL)
    trainer = ProcessRef(run["pid"], run["pid_start"])
    assert trainer.alive()  # the trainer lives on in its own session
    out = project.cli("runs")
    assert "lost" in out.stdout
    lost = project.run_row()
    assert lost["status"] == "lost" and "supervisor" in lost["exit_reason"]
    incident = project.rows("select * from incidents where kind = 'lost'")[0]
    assert "trainer pid" in incident["summary"]
    target = project.run_row()["epoch"] + 2
    out = project.cli("resume", run["id"], f"training.epochs={target}",
                      "training.max_steps_per_epoch=3")
    assert out.returncode == 0, out.stdout[-2000:]
    assert not trainer.alive()
    final = project.run_row()
    assert final["status"] == "completed" and final["epoch"] >= target
    epochs = [r["epoch"] for r in project.rows("select epoch from epochs order by epoch")]
    assert epochs == list(range(1, final["epoch"] + 1))


def test_tail_follow_streams_until_the_run_ends(project: Project) -> None:
    # step 4 (in epoch 2) waits 6 s: the run is still going when `tail -f` starts, however
    # slowly a busy machine starts the command
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=3"),
                      "--detach", env={"DINOWM_FAULT": "global_step:4:sleep=6"})
    run_id = project.run_row()["id"]
    out = project.cli("tail", run_id, "-f", "-n", "0", timeout=180)
    assert out.returncode == 0
    assert "epoch 2 done" in out.stdout and f"[run {run_id} is completed]" in out.stdout
    assert Path(project.run_row()["run_dir"]).exists()

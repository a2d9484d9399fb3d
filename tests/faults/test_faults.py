# SPDX-License-Identifier: MIT
"""Fault injection: kills, freezes, slow phases, hopeless runs, full disks (real processes)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from dinowm.train import checkpoint as ckpt
from tests.support.run_checks import DET, all_checkpoints_verify, epochs, final_weights
from tests.support.supervised import Project, tiny


def _incidents(project: Project, run_id: str, kind: str) -> list[dict]:
    rows = project.rows("select * from incidents where run_id = ? and kind = ?", run_id, kind)
    for r in rows:
        r["details"] = json.loads(r["details_json"] or "{}")
    return rows


def _kill_plan(seed: int, kills: int, total_steps: int) -> str:
    """Fault spec killing the trainer at `kills` distinct global steps."""
    rng = random.Random(seed)
    points = sorted(rng.sample(range(2, total_steps + 1), kills))
    return ",".join(f"global_step:{p}:sigkill" for p in points)


@pytest.mark.parametrize("seed", [0])
def test_three_sigkills_per_run_end_bit_identical(project: Project, tmp_path: Path,
                                                  seed: int) -> None:
    args = tiny("training.epochs=4", "training.max_steps_per_epoch=5", *DET)
    assert project.cli("run", *args, "--name", "straight").returncode == 0
    env = {"DINOWM_FAULT": _kill_plan(seed, 3, 20),
           "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *args, "--name", "killed", env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    runs = {r["name"]: r for r in project.rows("select * from runs")}
    killed = runs["killed"]
    assert killed["status"] == "completed" and killed["attempts"] == 4
    assert len((tmp_path / "fired").read_text().split()) == 3
    crashes = _incidents(project, killed["id"], "crash")
    assert len(crashes) == 3 and all("SIGKILL" in c["summary"] for c in crashes)
    assert all(c["details"]["log_tail"] for c in crashes)
    assert len(_incidents(project, killed["id"], "resume")) == 3
    assert epochs(project, killed["id"]) == [1, 2, 3, 4]
    a, b = final_weights(runs["straight"]), final_weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    all_checkpoints_verify(killed)


@pytest.mark.parametrize("point", ["ckpt_mid_write", "ckpt_before_rename", "ckpt_after_rename",
                                   "ckpt_after_manifest", "ckpt_before_event"])
def test_sigkill_during_a_checkpoint_save(project: Project, tmp_path: Path, point: str) -> None:
    env = {"DINOWM_FAULT": f"{point}:2:sigkill", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    out = project.cli("run", *tiny("training.epochs=3", "training.max_steps_per_epoch=3", *DET),
                      env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["attempts"] == 2
    assert epochs(project, run["id"]) == [1, 2, 3]
    all_checkpoints_verify(run)
    on_disk = {str(p) for p in (Path(run["run_dir"]) / "checkpoints").glob("*.pth")}
    for row in project.rows("select * from checkpoints where run_id = ?", run["id"]):
        if row["path"] in on_disk:
            assert ckpt.verify(Path(row["path"]))["sha256"] == row["sha256"]


@pytest.mark.parametrize("action, activity", [("hang", "blocked"), ("deadlock", "blocked"),
                                              ("busy", "busy")])
def test_freezes_are_detected_and_diagnosed(project: Project, tmp_path: Path, action: str,
                                            activity: str) -> None:
    env = {"DINOWM_FAULT": f"step:4:{action}", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=6", *DET,
                                   "watchdog.heartbeat_factor=2"), env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    run = project.run_row()
    assert run["status"] == "completed"
    (stall,) = _incidents(project, run["id"], "stall")
    d = stall["details"]
    assert d["verdict"]["age_s"] <= 2 * d["verdict"]["limit_s"]
    assert d["process"]["activity"] == activity
    assert "faults.py" in d["stuck_frame"]["text"]


def test_slow_validation_and_checkpoints_raise_no_false_alarm(project: Project) -> None:
    env = {"DINOWM_FAULT": "validation:*:sleep=2.5,checkpoint:*:sleep=2.5"}
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=4",
                                   "watchdog.heartbeat_floor_s=1", "watchdog.heartbeat_factor=3",
                                   "watchdog.validation_s=8", "watchdog.checkpoint_s=8"),
                      env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["attempts"] == 1
    assert not _incidents(project, run["id"], "stall")


def test_a_fault_in_every_attempt_ends_with_no_progress(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=3",
                                   "watchdog.heartbeat_floor_s=1.5", "watchdog.heartbeat_factor=2",
                                   "watchdog.max_attempts=6"),
                      env={"DINOWM_FAULT": "step:2:hang"})
    assert out.returncode == 1
    run = project.run_row()
    assert run["status"] == "failed" and "no progress" in run["exit_reason"]
    assert run["pid"] is None and run["attempts"] <= 5
    assert len(_incidents(project, run["id"], "stall")) == run["attempts"]


@pytest.mark.parametrize("fault", ["checkpoint:2:enospc", "event:30:enospc"])
def test_disk_full_fails_cleanly_keeping_the_previous_checkpoint(project: Project,
                                                                 fault: str) -> None:
    out = project.cli("run", *tiny("training.epochs=4", "training.max_steps_per_epoch=3"),
                      env={"DINOWM_FAULT": fault})
    assert out.returncode == 1
    run = project.run_row()
    assert run["status"] == "failed" and run["exit_reason"].startswith("disk full")
    assert run["attempts"] == 1  # never retried
    all_checkpoints_verify(run)
    assert ckpt.load_latest(Path(run["run_dir"]) / "checkpoints").manifest["epoch"] >= 1


def test_file_size_limit_is_disk_full_not_a_silent_death(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=3", "training.max_steps_per_epoch=3"),
                      env={"DINOWM_FSIZE_LIMIT": str(300_000)})
    assert out.returncode == 1
    run = project.run_row()
    assert run["status"] == "failed" and run["exit_reason"].startswith("disk full")
    assert any("File too large" in i["summary"] for i in project.rows(
        "select summary from incidents where run_id = ?", run["id"]))

# SPDX-License-Identifier: MIT
"""A real supervisor against a fake NVML (no NVIDIA driver here): a GPU that is lost mid-run
stops the run with an alert instead of resuming it; an NVML call that hangs for good is
reported while training goes on, and a thermal pause waiting on it is lifted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.nvml_fake import UUIDS, FakeGPU, write_pynvml
from tests.support.supervised import Project, tiny


def _incidents(project: Project, run_id: str, kind: str) -> list[dict]:
    rows = project.rows("select * from incidents where run_id = ? and kind = ? order by t",
                        run_id, kind)
    return [{**r, "details": json.loads(r["details_json"] or "{}")} for r in rows]


def _with_fake_nvml(project: Project, tmp_path: Path, gpu: FakeGPU) -> dict[str, str]:
    folder = write_pynvml(tmp_path / "nvml", [gpu])
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def test_a_lost_gpu_stops_the_run_with_an_alert_and_no_resume(project: Project,
                                                              tmp_path: Path) -> None:
    lost = tmp_path / "gpu-lost"
    env = _with_fake_nvml(project, tmp_path, FakeGPU(UUIDS[0], lost_when=str(lost)))
    proc = project.popen("run", *tiny("training.epochs=200", "training.max_steps_per_epoch=2"),
                         env=env)
    try:
        project.wait_for("select epoch from epochs where epoch >= 1")
        assert project.rows("select count(*) n from telemetry")[0]["n"] > 0  # the fake answers
        lost.touch()
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, out[-3000:]
    run = project.run_row()
    assert run["status"] == "failed" and run["exit_reason"].startswith("GPU lost, not resumed")
    assert run["attempts"] == 1 and run["pid"] is None and run["epoch"] < 200
    (alert,) = _incidents(project, run["id"], "gpu_lost")
    assert alert["details"] == {"gpu": 0, "error": "GPU is lost"}
    assert not _incidents(project, run["id"], "resume")
    assert "GPU lost" in out


def test_hung_nvml_is_reported_lifts_a_thermal_pause_and_training_finishes(
        project: Project, tmp_path: Path) -> None:
    hang = tmp_path / "nvml-hangs"
    env = _with_fake_nvml(project, tmp_path, FakeGPU(UUIDS[0], temp=91, hang_when=str(hang)))
    proc = project.popen("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=3",
                                      "thermal.max_temp_c=85", "thermal.hold_s=0"), env=env)
    try:
        paused = project.wait_for("select * from incidents where kind = 'thermal'")
        assert "pausing" in paused[0]["summary"]
        hang.touch()  # the next temperature read never returns
        out, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["attempts"] == 1 and run["epoch"] == 2
    stalled = [i for i in _incidents(project, run["id"], "telemetry") if "stalled" in i["summary"]]
    assert len(stalled) == 1 and "thermal pause lifted" in stalled[0]["summary"]
    assert stalled[0]["details"]["silent_s"] >= 1.0
    assert not (Path(run["run_dir"]) / "control.json").exists()
    assert [r["epoch"] for r in project.rows("select epoch from epochs order by epoch")] == [1, 2]

# SPDX-License-Identifier: MIT
"""Supervised runs end to end: crashes, stalls, zombies, OOM, a hung wandb, a chatty trainer."""

from __future__ import annotations

import json
import signal
from pathlib import Path


from tests.support.supervised import Project, tiny


def _epochs(project: Project, run_id: str) -> list[int]:
    return [r["epoch"] for r in project.rows(
        "select epoch from epochs where run_id = ? order by epoch", run_id)]


def test_demo_run_completes_with_every_epoch_recorded(project: Project) -> None:
    # the demo preset as `make demo` runs it, cut to 2 of its 5 epochs to spare CI a minute
    out = project.cli("run", "--preset", "demo", "training.epochs=2", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["epoch"] == run["epochs_target"] == 2
    rows = project.rows("select * from epochs where run_id = ? order by epoch", run["id"])
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["train_loss"] is not None and r["val_loss"] is not None
        assert r["z_err_pred"] is not None and r["duration_s"] > 0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    hw = project.rows("select * from hardware where run_id = ?", run["id"])[0]
    assert hw["cpu_threads"] >= 1 and hw["gpu_count"] == 0
    tele = project.incidents(run["id"], "telemetry")
    assert tele and "unavailable" in tele[0]["summary"]
    assert "untrained" in run["encoder_label"]
    assert "completed" in out.stdout


def test_sigstop_is_detected_as_a_stall_and_resumed(project: Project, tmp_path: Path) -> None:
    floor = 3.0
    env = {"DINOWM_FAULT": "step:6:sigstop", "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=4",
                                   f"watchdog.heartbeat_floor_s={floor}"), env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    assert run["status"] == "completed"
    (stall,) = project.incidents(run["id"], "stall")
    d = stall["details"]
    assert d["verdict"]["age_s"] <= 2 * floor
    assert d["process"]["state"] == "T" and d["process"]["activity"] == "stopped"
    assert d["log_tail"] and d["stacks"]  # stacks dumped once continued
    assert d["process"]["continued"] and "stopped" in stall["summary"]
    assert _epochs(project, run["id"]) == [1, 2]


def test_unreaped_child_is_named_in_the_stall(project: Project, tmp_path: Path) -> None:
    env = {"DINOWM_FAULT": "step:3:zombie", "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=4",
                                   "watchdog.heartbeat_floor_s=3"), env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    (stall,) = project.incidents(run["id"], "stall")
    zombies = stall["details"]["zombies"]
    assert zombies and zombies[0]["comm"].startswith("python")
    assert "zombie" in stall["summary"]
    # the trainer sleeps in the fault hook: blocked, and the stuck frame says where
    assert stall["details"]["process"]["activity"] == "blocked"
    assert "faults.py" in stall["details"]["stuck_frame"]["text"]


def test_cuda_oom_halves_the_micro_batch(project: Project, tmp_path: Path) -> None:
    env = {"DINOWM_FAULT": "step:6:oom", "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=4",
                                   "watchdog.oom=halve"), env=env)
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    assert run["status"] == "completed"
    assert (run["batch_size"], run["grad_accum"], run["micro_batch"]) == (8, 2, 4)
    (oom,) = project.incidents(run["id"], "oom")
    assert oom["details"]["batch_size"] == 8 and "out of memory" in oom["summary"]
    (policy,) = project.incidents(run["id"], "oom_policy")
    assert "micro-batch 8 → 4" in policy["summary"]
    cfg = json.loads((Path(run["run_dir"]) / "config.json").read_text())["config"]
    assert cfg["training"]["grad_accum"] == 2
    assert _epochs(project, run["id"]) == [1, 2]


def test_oom_with_stop_policy_fails_with_advice(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=1", "watchdog.oom=stop"),
                      env={"DINOWM_FAULT": "step:2:oom"})
    assert out.returncode == 1
    run = project.run_row()
    assert run["status"] == "failed" and "training.batch_size=4" in run["exit_reason"]


def test_hung_wandb_does_not_slow_training(project: Project, tmp_path: Path) -> None:
    fake = tmp_path / "fakewandb"
    fake.mkdir()
    (fake / "wandb.py").write_text(
        "import time\nclass Settings:\n    def __init__(self, **kw): pass\n"
        "def init(**kw):\n    while True:\n        time.sleep(3600)\n")
    args = tiny("training.epochs=2", "training.max_steps_per_epoch=6")
    base = project.cli("run", *args)
    assert base.returncode == 0
    hung = project.cli("run", *args, "wandb.mode=offline", env={"PYTHONPATH": str(fake)})
    assert hung.returncode == 0, hung.stdout[-2000:]
    runs = project.rows("select * from runs order by created_at")
    speeds = [project.rows("select avg(samples_per_s) s from epochs where run_id = ?",
                           r["id"])[0]["s"] for r in runs]
    assert runs[1]["status"] == "completed"
    assert speeds[1] > 0.5 * speeds[0], speeds  # same order: the trainer never sees wandb


def test_ten_megabytes_of_stdout_do_not_block(project: Project) -> None:
    out = project.cli("run", *tiny("training.epochs=1", "training.max_steps_per_epoch=3"),
                      env={"DINOWM_FAULT": "step:2:spam"}, timeout=300)
    assert out.returncode == 0
    run = project.run_row()
    assert run["status"] == "completed"
    assert (Path(run["run_dir"]) / "train.log").stat().st_size > 10 * 2**20


def test_config_error_fails_without_retry(project: Project) -> None:
    out = project.cli("run", *tiny("data.path=/nonexistent/ds", "data.synthetic=false"))
    assert out.returncode == 2 and "data.path" in out.stderr
    assert not (project.root / "outputs").exists() or not any(
        (project.root / "outputs").iterdir())


def test_ctrl_c_stops_gracefully(project: Project) -> None:
    proc = project.popen("run", *tiny("training.epochs=50"))
    rows = project.wait_for("select id from runs where step >= 3")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    run = project.run_row()
    assert run["status"] == "stopped" and run["pid"] is None
    assert (Path(run["run_dir"]) / "checkpoints" / "model_latest.pth").exists()
    assert rows[0]["id"] == run["id"]

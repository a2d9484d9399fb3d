# SPDX-License-Identifier: MIT
"""`dinowm eval` on a really trained tiny run: planning beats random actions, the objective
prefers the true actions, results survive reindex; the evaluation is supervised (progress,
stop, one at a time, a stall diagnosed and ended)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.supervised import Project, tiny

FAST = ["--episodes", "4", "--horizon", "3", "--cem-samples", "64", "--cem-topk", "8",
        "--cem-iterations", "6", "--gd-steps", "30"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """A tiny demo run trained for 3 epochs by the real `dinowm run`."""
    project = Project(tmp_path_factory.mktemp("eval"))
    out = project.cli("run", *tiny("training.epochs=3", "data.synth_episodes=8",
                                   "training.predictor_lr=0.002", "training.decoder_lr=0.002"))
    assert out.returncode == 0, out.stderr[-2000:]
    return project, project.run_row()["id"]


def _rows(project: Project, run_id: str) -> list[dict]:
    return project.rows("select checkpoint, epoch, plan_score, metrics_json, curves_json from "
                        "evaluations where run_id = ? order by epoch", run_id)


def test_planning_beats_random_and_results_survive_reindex(trained) -> None:
    project, run_id = trained
    out = project.cli("eval", run_id, "--checkpoint", "all", *FAST, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    records = json.loads(out.stdout)
    assert [r["checkpoint"] for r in records] == [f"epoch_{e:04d}.pth" for e in (1, 2, 3)]
    last = records[-1]["metrics"]
    # CEM's actions end nearer the goal (in the model's latent space) than random ones, and
    # the trained model's objective prefers the true actions to random ones.
    assert last["cem_objective"] < last["random_objective"]
    assert last["gd_objective"] < last["random_objective"]
    assert last["rank_true_vs_random"] > 0.7, last
    assert last["plan_score"] == last["cem_action_err"]
    assert records[-1]["curves"]["horizon"] == [1, 2, 3]
    run_dir = project.root / "outputs" / run_id
    for rec in records:
        assert (run_dir / rec["pictures"]["horizon_plot"]).read_text().startswith("<svg")
        assert all((run_dir / p).read_bytes()[:4] == b"\x89PNG" for p in rec["pictures"]["goals"])
    assert len((run_dir / "evaluations.jsonl").read_text().splitlines()) == 3
    before = _rows(project, run_id)
    assert len(before) == 3 and before[-1]["plan_score"] == pytest.approx(last["plan_score"])

    (project.root / "runs.db").unlink()
    assert project.cli("reindex").returncode == 0
    assert _rows(project, run_id) == before


def test_an_evaluation_is_stopped_and_runs_one_at_a_time(trained) -> None:
    project, run_id = trained
    events = project.root / "outputs" / run_id / "eval" / "events.jsonl"
    seen = events.stat().st_size if events.exists() else 0
    slow = project.popen("eval", run_id, "--planner", "gd", "--gd-steps", "100000",
                         "--episodes", "2", "--horizon", "2", "--quiet")
    deadline = time.monotonic() + 60
    while '"progress"' not in (events.read_text()[seen:] if events.exists() else ""):
        assert slow.poll() is None and time.monotonic() < deadline, slow.stdout.read()
        time.sleep(0.1)
    second = project.cli("eval", run_id, *FAST)
    assert second.returncode == 1
    assert f"Run {run_id} is already being evaluated by pid {slow.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    stop = project.cli("eval", run_id, "--stop")
    assert f"(pid {slow.pid})" in stop.stdout
    output, _ = slow.communicate(timeout=60)
    assert slow.returncode == 0, output
    assert "evaluation stopped: 0 checkpoint(s) evaluated (SIGTERM received)" in output
    assert project.cli("eval", run_id, "--stop").stdout.startswith("no evaluation")


def test_a_stalled_evaluation_is_diagnosed_and_ended(trained) -> None:
    project, run_id = trained
    began = time.monotonic()
    out = project.cli("eval", run_id, *FAST, "--stall-s", "3", "--quiet",
                      env={"DINOWM_FAULT": "eval_step:2:hang"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert time.monotonic() - began < 60
    [incident] = project.incidents(run_id, "eval_stalled")
    assert "evaluation made no progress for" in incident["summary"]
    assert "in faults.py" in incident["summary"]  # the stuck frame, from the dumped stacks
    assert incident["summary"] in out.stderr


def test_bad_options_are_one_line_errors(trained) -> None:
    project, run_id = trained
    for args, text in ((["--checkpoint", "epoch_9"], "--checkpoint epoch_9: no committed "
                        "checkpoint of that epoch"),
                       (["--planner", "mppi"], "--planner mppi: use cem, gd or both"),
                       (["--horizon", "0"], "--horizon 0 is out of range")):
        out = project.cli("eval", run_id, *args)
        assert out.returncode == 2 and text in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1

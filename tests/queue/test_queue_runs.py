# SPDX-License-Identifier: MIT
"""A sweep of three tiny runs through the real queue supervisor, with the run of the first
entry losing its supervisor (SIGKILL) and the queue supervisor killed (SIGKILL, by fault
injection) between creating the second run and spawning it: every entry runs once, in order."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.store import Store
from tests.support.evaluations import sample_record
from tests.support.supervised import FAST_WATCHDOG, Project
from tests.support.trainer import TINY

SMALL = [*TINY, *FAST_WATCHDOG, "training.epochs=1", "training.max_steps_per_epoch=2",
         "training.rollouts=0", "training.num_reconstruct_samples=0", "data.synth_episodes=4",
         "data.synth_length=20"]
LRS = ("0.0005", "0.001", "0.002")


def _until(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _queue_pid(root: Path) -> int | None:
    holder = rundir.holder(root / "outputs" / "queue.lock")
    return holder.pid if holder else None


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sweep queued and run to the end through both kills; what the test reads."""
    proj = Project(tmp_path_factory.mktemp("queue"))
    out = proj.cli("sweep", "--preset", "demo", *SMALL, f"training.predictor_lr={','.join(LRS)}")
    assert out.returncode == 0, out.stderr
    sweep_id = out.stdout.split()[1].rstrip(":")
    once = proj.root / "faults.once"
    started = time.monotonic()
    # The first trainer dawdles at its first step, long enough for its supervisor to be
    # killed mid-run; the queue supervisor dies right after creating the second run.
    fault = {"DINOWM_FAULT": "global_step:1:sleep=3,queue_created:2:sigkill",
             "DINOWM_FAULT_ONCE": str(once)}
    out = proj.cli("queue", "start", "--detach", env=fault)
    assert out.returncode == 0, out.stderr
    first = _until(lambda: proj.rows("select * from runs where pid is not null and "
                                     "status = 'running'"), "the first run's trainer")[0]
    os.kill(first["supervisor_pid"], signal.SIGKILL)
    _until(lambda: _queue_pid(proj.root) is None and proj.rows(
        "select * from queue where id = 2 and state = 'running'"), "the queue supervisor's death")
    killed_at = proj.rows("select * from runs where queue_entry = 2")
    out = proj.cli("queue", "start", "--detach")
    assert out.returncode == 0, out.stderr
    _until(lambda: _queue_pid(proj.root) is None and len(proj.rows(
        "select * from queue where state = 'completed'")) == 3, "the whole queue", 120)
    return {"proj": proj, "sweep": sweep_id, "first": first, "killed_at": killed_at,
            "wall_s": time.monotonic() - started, "listing": proj.cli("queue").stdout}


def test_entries_run_one_after_another_in_order(ran: dict) -> None:
    proj = ran["proj"]
    entries = proj.rows("select * from queue order by id")
    runs = {r["id"]: r for r in proj.rows("select * from runs")}
    assert [e["state"] for e in entries] == ["completed"] * 3
    ordered = [runs[e["run_id"]] for e in entries]
    assert [r["status"] for r in ordered] == ["completed"] * 3
    assert [json.loads(r["config_json"])["training"]["predictor_lr"] for r in ordered] == \
        [float(lr) for lr in LRS]
    for before, after in zip(ordered, ordered[1:]):
        assert before["started_at"] < after["started_at"]
        assert after["started_at"] >= before["ended_at"]  # the next began once this one ended
    assert "completed" in ran["listing"] and ran["sweep"] in ran["listing"]


def test_a_run_whose_supervisor_died_is_resumed_before_the_next(ran: dict) -> None:
    proj, first = ran["proj"], ran["first"]
    run = proj.rows("select * from runs where id = ?", first["id"])[0]
    assert run["queue_entry"] == 1 and run["attempts"] >= 2
    assert [i["summary"] for i in proj.incidents(run["id"], "resume")] == \
        ["resumed by the queue"]
    assert proj.incidents(run["id"], "lost")  # its death is on the record
    second = proj.rows("select * from runs where queue_entry = 2")[0]
    assert second["started_at"] >= run["ended_at"]


def test_no_entry_ever_gets_a_second_run(ran: dict) -> None:
    proj = ran["proj"]
    assert len(ran["killed_at"]) == 1 and ran["killed_at"][0]["status"] == "created"
    per_entry = proj.rows("select queue_entry, count(*) as n from runs group by queue_entry")
    assert {r["queue_entry"]: r["n"] for r in per_entry} == {1: 1, 2: 1, 3: 1}
    assert len(list((proj.root / "outputs").glob("2*"))) == 3  # and no stray run folder
    second = proj.rows("select * from runs where queue_entry = 2")[0]
    assert second["id"] == ran["killed_at"][0]["id"] and second["attempts"] == 1
    lines = [json.loads(s) for s in (proj.root / "outputs/queue.jsonl").read_text().splitlines()]
    assert sorted(item["id"] for item in lines if item["op"] == "start") == [1, 2, 3]


def test_the_sweep_log_compares_exactly_what_differs(ran: dict) -> None:
    proj = ran["proj"]
    ids = [r["id"] for r in proj.rows("select id from runs order by created_at")]
    with Store(proj.root / "runs.db") as store:  # the last run was evaluated
        store.add_evaluation(sample_record(ids[-1], "epoch_0001.pth", 1,
                                           metrics={"plan_score": 0.25}))
    out = proj.cli("export-log", "sweep.md", "--sweep", ran["sweep"])
    assert out.returncode == 0, out.stderr
    text = (proj.root / "sweep.md").read_text()
    head = next(line for line in text.splitlines() if line.startswith("| Run | Name"))
    assert [cell.strip(" `") for cell in head.split("|")[1:-1]] == [
        "Run", "Name", "Status", "training.predictor_lr", "Epochs", "Best Val Loss",
        "Best z_err_pred", "Best Plan Score", "Duration", "Incidents"]
    assert "0.25 (Epoch 1)" in text
    bad = proj.cli("export-log", "x.md", "--sweep", "sw-nope")
    assert bad.returncode == 2 and "sw-nope" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_reindex_rebuilds_the_queue_from_its_journal(ran: dict) -> None:
    proj = ran["proj"]
    before = proj.rows("select id, state, run_id, sweep_id, position from queue order by id")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{proj.root / 'runs.db'}{suffix}").unlink(missing_ok=True)
    out = proj.cli("reindex")
    assert out.returncode == 0 and "3 queue entries" in out.stdout, out.stdout + out.stderr
    assert proj.rows("select id, state, run_id, sweep_id, position from queue order by id") == \
        before
    assert len(proj.rows("select * from runs where sweep_id = ?", ran["sweep"])) == 3

# SPDX-License-Identifier: MIT
"""The queue without training: adds checked like `dinowm run`, sweeps all or nothing, moves,
removes, pause; the free-and-cool gate against the fake NVML; the on_empty hook."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.config import load_project
from dinowm.errors import ConfigError, NotFoundError
from dinowm.queue import entries, hooks, sweep
from dinowm.queue.gate import Gate
from dinowm.queue.runner import QueueRunner, hold
from dinowm.runs import create_run, resolve_run
from dinowm.store import Store
from tests.support.nvml_fake import MIB, UUIDS, FakeGPU, fake_pynvml


def test_a_2x2_grid_becomes_four_checked_entries(project_dir: Path, cli) -> None:
    out = cli("sweep", "--preset", "demo", "training.batch_size=8,16", "frameskip = [2, 3]",
              "training.epochs=2", cwd=project_dir)
    assert out.returncode == 0, out.stderr
    with Store(project_dir / "runs.db") as store:
        rows = store.queue_entries()
    configs = [json.loads(r["config_json"]) for r in rows]
    assert [(c["training"]["batch_size"], c["frameskip"]) for c in configs] == \
        [(8, 2), (8, 3), (16, 2), (16, 3)]
    assert {c["training"]["epochs"] for c in configs} == {2}
    assert len({r["sweep_id"] for r in rows}) == 1 and rows[0]["sweep_id"] in out.stdout
    assert [r["state"] for r in rows] == ["queued"] * 4
    lines = (project_dir / "outputs" / "queue.jsonl").read_text().splitlines()
    assert [json.loads(line)["op"] for line in lines] == ["add"] * 4
    listed = cli("queue", "--json", cwd=project_dir)
    assert [e["position"] for e in json.loads(listed.stdout)["entries"]] == [1, 2, 3, 4]


def test_a_bad_configuration_queues_nothing(project_dir: Path, cli) -> None:
    out = cli("sweep", "--preset", "demo", "frameskip=2,0", cwd=project_dir)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert "configuration 2 of 2 (frameskip=0)" in out.stderr and "frameskip" in out.stderr
    out = cli("queue", "add", "--preset", "demo", "training.bogus=1", cwd=project_dir)
    assert out.returncode == 2 and "training.bogus" in out.stderr
    with Store(project_dir / "runs.db") as store:
        assert store.queue_entries() == []
    grid = cli("sweep", "--preset", "demo", "training.predictor_lr=1e-4:1e-3", cwd=project_dir)
    assert grid.returncode == 2 and "--random" in grid.stderr


def test_random_draws_are_reproducible_and_keep_integers() -> None:
    axes = sweep.parse_axes(["training.batch_size=4:16", "training.predictor_lr=1e-4:1e-3",
                             "frameskip=3,5"])
    first, again = sweep.draw(axes, 6, seed=7), sweep.draw(axes, 6, seed=7)
    assert first == again and first != sweep.draw(axes, 6, seed=8)
    for combo in first:
        values = dict(item.split("=") for item in combo)
        assert values["training.batch_size"].isdigit()
        assert 4 <= int(values["training.batch_size"]) <= 16
        assert 1e-4 <= float(values["training.predictor_lr"]) <= 1e-3
        assert values["frameskip"] in ("3", "5")


def test_move_remove_and_pause(project_dir: Path, cli) -> None:
    project = load_project(project_dir / "dinowm.toml")
    ids = [entries.add(project, "demo", [f"seed={i}"])["id"] for i in range(3)]
    assert entries.move(project, ids[2], "1") == [ids[2], ids[0], ids[1]]
    assert entries.move(project, ids[2], "down") == [ids[0], ids[2], ids[1]]
    assert entries.move(project, ids[0], "9")[-1] == ids[0]  # past the end: the last
    with pytest.raises(ConfigError, match="give 1 to 3, up, down"):
        entries.move(project, ids[0], "sideways")
    entries.remove(project, ids[1])
    with pytest.raises(NotFoundError, match="No queue entry 77"):
        entries.remove(project, 77)
    with Store(project.runs_db) as store:
        assert store.queued_ids() == [ids[2], ids[0]]
        assert store.queue_claim(ids[2], "20260101-000000-abcd")
    out = cli("queue", "rm", str(ids[2]), cwd=project_dir)
    assert out.returncode == 1 and "dinowm stop 20260101-000000-abcd" in out.stderr
    entries.set_paused(project, True)
    listed = cli("queue", cwd=project_dir)
    assert "paused" in listed.stdout and "running" in listed.stdout


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeGPU:
    """One fake GPU, cool and idle, as pynvml."""
    gpu = FakeGPU(UUIDS[0], temp=50, mem_used=300 * MIB)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([gpu]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return gpu


def test_a_hot_or_busy_gpu_holds_the_queue(project_dir: Path, nvml: FakeGPU) -> None:
    project = load_project(project_dir / "dinowm.toml")
    entry = entries.add(project, "demo", ["thermal.resume_temp_c=70"])
    gate = Gate()
    runner = QueueRunner(project, hold(project), say=lambda text: None, gate=gate)
    nvml.temp = 85
    with Store(project.runs_db) as store:
        assert runner.step() == "waiting"
        assert store.queue_status() == (f"entry {entry['id']} waits: GPU 0 is at 85 °C; "
                                        f"waiting until it is below thermal.resume_temp_c=70")
        assert store.queue_next()["id"] == entry["id"] and store.runs() == []
        nvml.temp = 69
        cfg = entries.resolved_of(entry).config
        assert gate.why_not(store, cfg) is None  # cooled below resume_temp_c: it may start
        nvml.mem_used = 9000 * MIB  # another process took the GPU
        assert "GPU 0 has 9,000 MiB in use by another process" in gate.why_not(store, cfg)
        nvml.mem_used = 200 * MIB
        run = create_run(project, resolve_run(project, "demo", []))
        with rundir.claim(run["run_dir"], run["id"]):  # a live supervisor holds this run
            store.update_run(run["id"], status="running")
            assert gate.why_not(store, cfg).startswith(f"run {run['id']}")
    gate.close()
    runner.lock.release()


def test_on_empty_is_called_once_the_last_entry_ended(project_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(project_dir / "dinowm.toml")
    called = []
    monkeypatch.setattr(hooks, "on_empty", called.append)
    run = create_run(project, resolve_run(project, "demo", []))
    entry = entries.add(project, "demo", [])
    with Store(project.runs_db) as store:  # the entry's run ended while nobody watched
        store.queue_claim(entry["id"], run["id"])
        store.update_run(run["id"], status="completed", attempts=1)
    assert QueueRunner(project, hold(project), say=lambda text: None, poll_s=0.01).run() == \
        "empty"
    assert called == [project]
    with Store(project.runs_db) as store:
        assert store.queue_entry(entry["id"])["state"] == "completed"
    assert QueueRunner(project, hold(project), say=lambda t: None).run() == "empty"
    assert called == [project]  # a queue that was empty already says nothing


def test_the_empty_queue_alerts_once(project_dir: Path, receiver) -> None:
    """on_empty is the queue_empty alert: one message to the [alerts] targets, with the counts."""
    from tests.support.alerts import alerts_body, set_alerts

    set_alerts(project_dir / "dinowm.toml", alerts_body([receiver.url("qempty")], ["queue_empty"]))
    project = load_project(project_dir / "dinowm.toml")
    run = create_run(project, resolve_run(project, "demo", []))
    entry = entries.add(project, "demo", [])
    with Store(project.runs_db) as store:
        store.queue_claim(entry["id"], run["id"])
        store.update_run(run["id"], status="completed", attempts=1)
    assert QueueRunner(project, hold(project), say=lambda text: None, poll_s=0.01).run() == \
        "empty"
    (message,) = receiver.wait_for("qempty", 1)
    assert message["message"] == "dinowm: queue empty — the queue ran dry (1 completed)"

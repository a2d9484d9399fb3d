# SPDX-License-Identifier: MIT
"""Alerts from real supervised runs to a real receiver (apprise's json:// on 127.0.0.1): one
message per event, a hung receiver costs training nothing, the URL stays out of every record."""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from pathlib import Path

from dinowm.alerts import notify
from dinowm.config import load_project
from dinowm.store import Store
from tests.support.alerts import Receiver, alerts_body, set_alerts
from tests.support.process import wait_until
from tests.support.supervised import Project, tiny
from tests.support.tui import aio, pilot_wait_for, screen_text
from tui.app import build_app

SHORT = ("training.max_steps_per_epoch=4", "training.rollouts=0", "training.keep_checkpoints=1")


def _token() -> str:
    return f"tok{uuid.uuid4().hex}"


def _files_holding(root: Path, secret: str) -> list[str]:
    """Every file under root (run folders, runs.db and its WAL, logs) whose bytes hold secret."""
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.name != "dinowm.toml" and secret.encode() in p.read_bytes()]


def test_each_event_of_a_real_run_alerts_once_and_the_url_stays_secret(
        project: Project, receiver: Receiver, tmp_path: Path) -> None:
    token = _token()
    set_alerts(project.root / "dinowm.toml",
               alerts_body([receiver.url(token)], ["stall", "oom", "crash", "completed"]))
    env = {"DINOWM_FAULT": "global_step:2:oom,global_step:6:sigstop",
           "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *tiny("training.epochs=2", *SHORT, "watchdog.heartbeat_floor_s=3"),
                      "--name", "alerted", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["attempts"] == 3
    got = receiver.wait_for(token, 3)
    time.sleep(0.5)  # time for a duplicate to arrive, were there one
    bodies = [m["message"] for m in receiver.messages(token)]
    assert len(bodies) == 3, bodies
    who = f"alerted ({run['id']}): "
    oom, stall, done = bodies
    (oom_incident,) = project.incidents(run["id"], "oom")
    (stall_incident,) = project.incidents(run["id"], "stall")
    assert oom == (f"{who}CUDA out of memory — {oom_incident['summary']}; resuming with half "
                   f"the micro-batch from the start")
    assert re.fullmatch(re.escape(f"{who}stalled — {stall_incident['summary']}; resuming from "
                                  f"epoch ") + r"[12]", stall), stall
    assert "stopped" in stall and done == f"{who}completed — epoch 2/2"
    assert [m["title"] for m in got] == ["dinowm alerted: CUDA out of memory",
                                         "dinowm alerted: stalled", "dinowm alerted: completed"]
    # the URL (its token) is in no file of the project but dinowm.toml: run folder, runs.db
    assert project.cli("export-log", "log.md", "--all").returncode == 0
    assert (project.root / "log.md").exists()
    assert _files_holding(project.root, token) == []
    assert _files_holding(project.root, str(receiver.server.server_port)) == []


def test_a_hanging_receiver_does_not_slow_training(project: Project, receiver: Receiver,
                                                   tmp_path: Path) -> None:
    """A crash at the first step of epoch 2 alerts a receiver that never answers (and one that
    does) while the resumed attempt trains epoch 2: its speed is epoch 1's.

    Every step also waits 0.25 s, so that an epoch's speed is not four tiny steps' share of a
    busy machine: an alert that held the trainer up for its 3 s timeout would still show.
    """
    token = _token()
    set_alerts(project.root / "dinowm.toml", alerts_body(
        ["env:DINOWM_ALERT_URL", receiver.hanging_url(token)], ["crash", "completed"], 3))
    env = {"DINOWM_FAULT": "global_step:5:raise,global_step:*:sleep=0.25",
           "DINOWM_ALERT_URL": receiver.url(token),
           "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    out = project.cli("run", *tiny("training.epochs=2", *SHORT), env=env)
    returned = time.time()
    assert out.returncode == 0, out.stdout[-3000:]
    run = project.run_row()
    assert run["status"] == "completed" and run["attempts"] == 2  # the crash resumed
    assert returned - run["ended_at"] < 3  # the last alert, still hanging, held nothing up
    one, two = project.rows("select samples_per_s, attempt from epochs where run_id = ? "
                            "order by epoch", run["id"])
    assert (one["attempt"], two["attempt"]) == (1, 2)
    assert two["samples_per_s"] > one["samples_per_s"] / 1.5, (one, two)
    bodies = [m["message"] for m in receiver.wait_for(token, 2)]
    assert [b.split(" — ")[0].split(": ")[1] for b in bodies] == ["crashed", "completed"]
    assert "RuntimeError: injected failure (DINOWM_FAULT); resuming from epoch 1" in bodies[0]
    log = Path(run["run_dir"]) / "supervisor.log"
    wait_until(lambda: log.exists() and "no answer within 3 s" in log.read_text(), timeout=15)
    assert "alert 'crash' to json://… failed: no answer within 3 s" in log.read_text()
    assert _files_holding(project.root, token) == []


def test_notify_is_the_hook_for_events_outside_a_run(project_dir: Path,
                                                     receiver: Receiver) -> None:
    token = _token()
    config = project_dir / "dinowm.toml"
    set_alerts(config, alerts_body([receiver.url(token)], ["queue_empty", "completed"]))
    project = load_project(config)
    assert notify(project, "queue_empty", summary="3 queued runs done, 1 failed") is True
    assert notify(project, "stall", summary="not listed") is False
    (message,) = receiver.wait_for(token, 1)
    assert message["message"] == "dinowm: queue empty — 3 queued runs done, 1 failed"
    run = {"id": "20261130-1", "name": "demo-9", "run_dir": str(project_dir / "nowhere")}
    assert notify(project, "completed", run=run, summary="epoch 5/5")
    assert receiver.wait_for(token, 2)[1]["message"] == "demo-9 (20261130-1): completed — epoch 5/5"
    set_alerts(config, None)
    assert notify(load_project(config), "queue_empty") is False


def test_alerts_test_says_which_targets_work(project_dir: Path, receiver: Receiver,
                                             cli) -> None:
    token = _token()
    bin_dir = project_dir / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "notify-send"  # a desktop without a notification daemon: the tool's args
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {project_dir / 'desktop.txt'}\n")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    set_alerts(project_dir / "dinowm.toml", alerts_body(
        [receiver.url(token), receiver.hanging_url(token), "nosuchservice://x/" + token],
        timeout_s=8, desktop=True))  # the one that answers does so in 8 s on a busy machine
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DBUS_SESSION_BUS_ADDRESS": "unix:abstract=x"}
    out = cli("alerts", "test", "--event", "stall", cwd=project_dir, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    rows = [" ".join(line.split()) for line in out.stdout.splitlines()]
    assert "json://… ok" in rows, rows  # the hanging one: our budget, or apprise's own (4 s)
    assert any(r.startswith("json://… failed no answer within ") for r in rows), rows
    assert any(r.startswith("nosuchservice://… failed not an apprise URL") for r in rows)
    assert "desktop (notify-send) ok" in rows and "dinowm-tui on a bell and a notification " \
        "while the app runs" in rows
    assert token not in out.stdout + out.stderr
    (message,) = receiver.wait_for(token, 1)
    assert message["message"].startswith("dinowm: stalled — a test of dinowm's 'stall' alert")
    assert (project_dir / "desktop.txt").read_text().splitlines()[-2:] == [
        "dinowm: stalled", message["message"]]
    set_alerts(project_dir / "dinowm.toml", alerts_body([receiver.url(token)], desktop=True))
    ok = cli("alerts", "test", cwd=project_dir)  # no session bus here
    assert ok.returncode == 0 and "desktop (notify-send) skipped" in " ".join(ok.stdout.split())


@aio
async def test_the_tui_rings_once_per_new_event_and_not_for_old_ones(
        project_dir: Path, monkeypatch) -> None:
    token = _token()
    monkeypatch.setenv("DINOWM_ALERT_URL", f"ntfy://ntfy.sh/{token}")
    config = project_dir / "dinowm.toml"
    set_alerts(config, alerts_body(["env:DINOWM_ALERT_URL"], ["stall", "completed"]))
    with Store(project_dir / "runs.db") as store:
        run_id = store.create_run({"id": "20261130-000000-ab", "name": "demo-1", "preset": "demo",
                                   "config_json": "{}", "config_hash": "h", "run_dir": str(project_dir / "outputs" / "r"),
                                   "status": "running", "epochs_target": 2})
        store.add_incident(run_id, "stall", "stall: an old one")
    app = build_app(config, gpu=None, poll_s=0.1)
    rang: list[int] = []
    app.bell = lambda: rang.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot_wait_for(pilot, lambda: app.alert_watch.statuses is not None)
        with Store(project_dir / "runs.db") as store:
            store.add_incident(run_id, "stall", "stall: no progress for 61 s in phase 'train'")
            store.add_incident(run_id, "resume", "resuming (attempt 2)")
            store.update_run(run_id, status="completed", epoch=2)
        await pilot_wait_for(pilot, lambda: len(rang) >= 2, what="two alerts")
        await pilot.pause(0.5)  # more polls: nothing new
        assert [text for _, text in app.notices] == [
            "demo-1 (20261130-000000-ab): stalled — stall: no progress for 61 s in phase 'train'",
            "demo-1 (20261130-000000-ab): completed — epoch 2/2"]
        assert len(rang) == 2 and [s for s, _ in app.notices] == ["warning", "information"]
        assert token not in screen_text(app) + repr(app.notices)
    again = build_app(config, gpu=None, poll_s=0.1)  # a restarted app: old events stay quiet
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot_wait_for(pilot, lambda: again.alert_watch.statuses is not None)
        await pilot.pause(0.5)
        assert again.notices == []

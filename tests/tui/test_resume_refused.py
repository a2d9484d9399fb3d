# SPDX-License-Identifier: MIT
"""The TUI's resume while a CLI resume holds the run: refused with the CLI's line, nothing changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.tui import LIVE, aio, app_for, cell, db_rows, keep_env, pilot_wait_for
from tui.screens.dialogs import PromptModal


def dinowm(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dinowm", *args], cwd=config.parent,
                            env=keep_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@aio
async def test_resume_from_the_tui_while_a_cli_resume_holds_the_run(live_project: Path) -> None:
    first = dinowm(live_project, "run", "--preset", "demo", *LIVE, "training.epochs=1")
    assert first.wait(timeout=180) == 0, first.stdout.read()
    run_id = db_rows(live_project, "select id from runs")[0]["id"]
    cli = dinowm(live_project, "resume", run_id, "training.epochs=200")
    try:
        app = app_for(live_project)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot_wait_for(pilot, lambda: "running" in cell(app, run_id, "status"),
                                 timeout=90, what="the CLI's resume running in the table")
            before = db_rows(live_project, "select * from runs where id = ?", run_id)[0]
            ours = "select id, kind from incidents where run_id = ? and kind != 'telemetry'"
            incidents = db_rows(live_project, ours, run_id)
            await pilot.press("r")
            await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal))
            await pilot.press(*"training.epochs=300", "enter")
            errors = await pilot_wait_for(pilot, lambda: [t for s, t in app.notices
                                                          if s == "error"],
                                          timeout=30, what="the refusal")
            assert errors == [f"Run {run_id} is already supervised by pid "
                              f"{before['supervisor_pid']} on {before['host']}"
                              + errors[0].split(before["host"], 1)[1]]
            assert "dinowm stop" in errors[0]
            after = db_rows(live_project, "select * from runs where id = ?", run_id)[0]
            assert (after["attempts"], after["epochs_target"], after["supervisor_pid"]) == \
                (before["attempts"], 200, before["supervisor_pid"])
            assert db_rows(live_project, ours, run_id) == incidents  # no resume incident
            spec = (Path(before["run_dir"]) / "config.json").read_text()
            assert '"epochs": 200' in spec  # the TUI's override was never written
    finally:
        stop = subprocess.run([sys.executable, "-m", "dinowm", "stop", run_id, "--wait"],
                              cwd=live_project.parent, env=keep_env(), capture_output=True,
                              text=True, timeout=120)
        cli.communicate(timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert db_rows(live_project, "select status from runs")[0]["status"] == "stopped"

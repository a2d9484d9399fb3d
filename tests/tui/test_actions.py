# SPDX-License-Identifier: MIT
"""The app operating real supervised runs of the tiny trainer against a real runs.db."""

from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

from dinowm.supervise.procinfo import ProcessRef
from tests.support.tui import (LIVE, aio, app_for, cell, db_rows, keep_env, pilot_wait_for,
                               screen_text)
from tui.messages import ResumeRequested, StopRequested
from tui.screens.dialogs import ConfirmModal, PromptModal
from tui.screens.new_run import NewRunModal
from tui.screens.run import RunScreen


async def open_modal(pilot) -> NewRunModal:
    await pilot.press("n")
    modal = await pilot_wait_for(pilot, lambda: isinstance(pilot.app.screen, NewRunModal)
                                 and pilot.app.screen, what="the new-run modal")
    await pilot_wait_for(pilot, lambda: modal.last is not None, what="the first validation")
    return modal


async def launch(pilot, name: str, extra: str = "") -> str:
    """Fill the modal (name, note, extra overrides) and start; returns the new run id."""
    modal = await open_modal(pilot)
    modal.query_one("#overrides").focus()
    await pilot.press("end", *extra)
    await pilot_wait_for(pilot, lambda: modal.last and modal.last.text.endswith(extra)
                         and modal.last.check.ok, what=f"valid overrides {extra!r}")
    modal.query_one("#name").value = name
    modal.query_one("#note").value = "from the tui"
    await pilot.press("ctrl+s")
    rows = await pilot_wait_for(pilot, lambda: db_rows(pilot.app.services.project.config_path,
                                                       "select * from runs where name = ?", name),
                                what=f"run {name} in runs.db")
    return rows[0]["id"]


@aio
async def test_launch_watch_complete_note_and_export(live_project: Path) -> None:
    app = app_for(live_project)
    async with app.run_test(size=(120, 40)) as pilot:
        run_id = await launch(pilot, "tiny")
        await pilot_wait_for(pilot, lambda: "completed" in cell(app, run_id, "status"), timeout=120,
                             what="the run to complete in the table")
        assert cell(app, run_id, "epoch").startswith("  2/2")
        assert cell(app, run_id, "val") != "-"
        row = db_rows(live_project, "select * from runs where id = ?", run_id)[0]
        assert row["status"] == "completed" and row["epoch"] == 2
        assert "training.max_steps_per_epoch=3" in row["command"]

        await pilot.press("a")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal))
        await pilot.press(*"lr fine", "enter")
        notes = await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select text from notes where run_id = ? order by id", run_id))
        await pilot_wait_for(pilot, lambda: len(db_rows(
            live_project, "select 1 from notes where run_id = ?", run_id)) == 2)
        notes = db_rows(live_project, "select text from notes where run_id = ? order by id",
                        run_id)
        assert [n["text"] for n in notes] == ["from the tui", "lr fine"]

        await pilot.press("e")
        prompt = await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal)
                                      and app.screen)
        prompt.query_one("#prompt").value = "log.md"
        await pilot.press("enter")
        log = live_project.parent / "log.md"
        await pilot_wait_for(pilot, lambda: log.exists() or any(
            s == "error" for s, _ in app.notices), timeout=60, what="the export")
        assert log.exists(), app.notices
        assert run_id in log.read_text() and "tiny" in log.read_text()
        assert not [n for n in app.notices if n[0] == "error"]


@pytest.mark.extended
@aio
async def test_stop_confirm_resume_quit_and_reopen(live_project: Path) -> None:
    app = app_for(live_project)
    async with app.run_test(size=(120, 40)) as pilot:
        run_id = await launch(pilot, "long", " training.epochs=50")
        await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select 1 from runs where id = ? and status = 'running' and step >= 1",
            run_id), timeout=90, what="training steps")
        await pilot_wait_for(pilot, lambda: "running" in cell(app, run_id, "status"))

        await pilot.press("s")
        confirm = await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal)
                                       and app.screen)
        await pilot_wait_for(pilot, lambda: "long" in screen_text(app)
                             and run_id in screen_text(app), what="the question on screen")
        await pilot.press("y")
        await pilot_wait_for(pilot, lambda: "stopped" in cell(app, run_id, "status"), timeout=60,
                             what="stopped in the table")
        assert confirm not in app.screen_stack
        row = db_rows(live_project, "select * from runs where id = ?", run_id)[0]
        assert row["status"] == "stopped" and row["epoch"] < 50

        await pilot.press("r")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal))
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select 1 from runs where id = ? and status = 'running' and "
            "supervisor_pid is not null", run_id), timeout=60, what="running again")
        await pilot_wait_for(pilot, lambda: "running" in cell(app, run_id, "status"))
        await pilot.press("q")
    row = db_rows(live_project, "select * from runs where id = ?", run_id)[0]
    assert ProcessRef(row["supervisor_pid"], row["supervisor_start"]).alive()  # quit ≠ stop

    again = app_for(live_project)
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot_wait_for(pilot, lambda: "running" in cell(again, run_id, "status"),
                             what="the run live after reopening")
        steps = db_rows(live_project, "select step from runs where id = ?", run_id)[0]["step"]
        await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select step from runs where id = ?", run_id)[0]["step"] > steps,
            timeout=60, what="the resumed run to make progress")
        await pilot.press("s")
        await pilot_wait_for(pilot, lambda: isinstance(again.screen, ConfirmModal))
        await pilot.press("y")
        await pilot_wait_for(pilot, lambda: "stopped" in cell(again, run_id, "status"), timeout=60)


@aio
async def test_stop_and_resume_requested_by_a_screen_message(live_project: Path) -> None:
    """A screen only posts StopRequested / ResumeRequested: the app confirms and acts."""
    app = app_for(live_project)
    async with app.run_test(size=(120, 40)) as pilot:
        run_id = await launch(pilot, "asked", " training.epochs=50")
        await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select 1 from runs where id = ? and status = 'running' and step >= 1",
            run_id), timeout=90, what="training steps")
        screen = RunScreen(app.services, run_id)
        await app.push_screen(screen)
        await pilot_wait_for(pilot, lambda: screen.run and screen.run["status"] == "running")

        screen.post_message(StopRequested(run_id, "asked"))
        confirm = await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal)
                                       and app.screen, what="the app's stop confirmation")
        assert confirm.question.startswith(f"Stop asked ({run_id})?")
        await pilot.press("y")
        await pilot_wait_for(pilot, lambda: screen.run["status"] == "stopped", timeout=60,
                             what="stopped on the run screen")
        assert app.screen is screen and confirm not in app.screen_stack
        assert db_rows(live_project, "select status from runs where id = ?", run_id) == [
            {"status": "stopped"}]

        screen.post_message(ResumeRequested(run_id, "asked"))
        prompt = await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal)
                                      and app.screen, what="the app's resume prompt")
        assert prompt.label.startswith(f"Resume asked ({run_id}) from its latest checkpoint")
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: db_rows(
            live_project, "select 1 from runs where id = ? and status = 'running' and "
            "supervisor_pid is not null", run_id), timeout=60, what="running again")
        await pilot_wait_for(pilot, lambda: screen.run["status"] == "running")

        screen.post_message(StopRequested(run_id, "asked"))
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await pilot_wait_for(pilot, lambda: screen.run["status"] == "stopped", timeout=60)


@aio
async def test_invalid_override_shows_the_cli_error_and_starts_nothing(
        live_project: Path) -> None:
    app = app_for(live_project)
    async with app.run_test(size=(80, 24)) as pilot:
        modal = await open_modal(pilot)
        await pilot.press("end", *" training.batch_sise=4")
        await pilot_wait_for(pilot, lambda: modal.error, what="the config error")
        cli = subprocess.run([sys.executable, "-m", "dinowm", "run", "--preset", "demo", *LIVE,
                              "training.batch_sise=4"], cwd=live_project.parent,
                             capture_output=True, text=True, env=keep_env(), timeout=60)
        assert cli.returncode == 2
        assert cli.stderr.strip() == f"error: {modal.error}"
        assert "Did you mean 'training.batch_size'?" in modal.error
        text = screen_text(app)
        assert "✘ Unknown key 'training.batch_sise'" in text
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.screen is modal
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: not isinstance(app.screen, NewRunModal))
    assert db_rows(live_project, "select * from runs") == []
    assert not (live_project.parent / "outputs").exists() or \
        not list((live_project.parent / "outputs").iterdir())

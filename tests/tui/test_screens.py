# SPDX-License-Identifier: MIT
"""Screens on a seeded runs.db: live updates, filter, sort, incidents, notes, compare, errors."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import DataTable, Input, TextArea

from dinowm.store import Store
from tests.support.tui import FakeGpu, aio, db_rows, pilot_wait_for, screen_text
from tests.support.tui_seed import NOW, RUNS
from tui.app import build_app
from tui.messages import (EditNoteRequested, ExportRequested, NewRunRequested, NoteRequested,
                          ResumeRequested, StopRequested)
from tui.screens.compare import CompareScreen
from tui.screens.dialogs import ConfirmModal, PromptModal
from tui.screens.incident import IncidentScreen
from tui.screens.new_run import NewRunModal
from tui.screens.run import RunScreen
from tui.widgets.gpu_strip import GpuStrip
from tui.widgets.runs_table import RunsTable

BASELINE, LR_HIGH, B8, BROKEN = (r[0] for r in RUNS)


def app_for(config: Path, **services: object):
    return build_app(config, gpu=None, clock=lambda: NOW, poll_s=3600, **services)


async def loaded(pilot) -> RunsTable:
    await pilot_wait_for(pilot, lambda: getattr(pilot.app.screen, "loaded", False))
    return pilot.app.screen.query_one(RunsTable)


def order(table: RunsTable) -> list[str]:
    return list(table.order)


@aio
async def test_a_poll_moves_only_the_changed_row(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await loaded(pilot)
        await pilot.pause()
        versions, rendered, order_before = dict(table.versions), table.rendered, list(table.order)
        with Store(seeded.parent / "runs.db") as store:  # the supervisor records an epoch
            store.upsert_epoch(B8, 3, {"train_loss": 0.5, "val_loss": 0.55, "z_err_pred": 0.2})
            store.update_run(B8, epoch=3)
        app.screen.poll_now()
        await pilot_wait_for(pilot, lambda: table.versions != versions, what="an update")
        await pilot_wait_for(pilot, lambda: table.rendered > rendered, what="a repaint")
        changed = {i for i in table.versions if table.versions[i] != versions.get(i)}
        assert changed == {B8} and table.rendered == rendered + 1  # one row formatted again
        assert table.order == order_before
        assert table.texts(B8)["epoch"].plain.startswith("  3/6")
        assert table.texts(B8)["zlast"].plain == "0.2"
        with Store(seeded.parent / "runs.db") as store:  # an incident alone also shows
            store.add_incident(BASELINE, "thermal", "GPU at 84 °C")
        app.screen.poll_now()
        await pilot_wait_for(pilot, lambda: table.texts(BASELINE)["incidents"].plain == "1")
        assert table.versions[B8] == versions[B8] + 1


@aio
async def test_filter_by_text_and_status_and_sort(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await loaded(pilot)
        assert order(table) == [BROKEN, B8, LR_HIGH, BASELINE]  # newest first
        await pilot.press("slash", *"lr-", "enter")
        assert order(table) == [LR_HIGH] and "1 shown" in app.screen.sub_title
        await pilot.press("escape")
        assert len(order(table)) == 4 and app.screen.query_one("#filter", Input).value == ""
        await pilot.press(*["f"] * 4)  # all → active → created → pending → running
        assert order(table) == [LR_HIGH]
        await pilot.press(*["f"] * 4)  # resuming, stopping, completed, stopped
        assert order(table) == [B8]
        await pilot.press(*["f"] * 4)  # failed, lost, cancelled, back to all
        assert len(order(table)) == 4
        await pilot.press("o")  # sort by status: running first
        assert order(table)[0] == LR_HIGH and table.sort_column == "status"
        await pilot.click(RunsTable, offset=(30, 0))  # the 'epoch' header, with the mouse
        assert table.sort_column == "epoch"
        assert order(table)[-1] == BROKEN  # 0/6 at the end (descending finished fraction)
        await pilot.click(RunsTable, offset=(30, 0))
        assert order(table)[0] == BROKEN and not table.sort_reverse


@aio
async def test_stall_incident_readable_in_full_and_notes_edit(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("down", "down", "enter")
        screen = await pilot_wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                                      and app.screen.run and app.screen)
        await pilot.press("4", "enter")
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        text = app.screen.query_one(TextArea).text
        assert "no progress" not in text and "stall: no heartbeat for 95 s" in text
        for needle in ("── stuck_frame", "loop.py:100 frame_0", "── stacks", "frame_59",
                       "threading.py\", line 327 in wait", "── log_tail", "step 120",
                       "age_s: 95.0"):
            assert needle in text, needle
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("5", "E")
        prompt = await pilot_wait_for(pilot, lambda: isinstance(app.screen, PromptModal)
                                      and app.screen)
        assert prompt.query_one(Input).value == "lr 1e-3 to see if it diverges"
        prompt.query_one(Input).value = "lr 1e-3 diverged at epoch 5"
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: db_rows(seeded, "select 1 from notes where text = ? "
                                                    "and edited_at is not null",
                                                    "lr 1e-3 diverged at epoch 5"))
        await pilot_wait_for(pilot, lambda: "diverged at epoch 5" in screen_text(app)
                             and "user (edited)" in screen_text(app), what="the edited note shown")


@aio
async def test_requests_posted_by_screens_get_the_apps_dialogs_and_workers(seeded: Path) -> None:
    """Screens only post requests: the app answers each with its dialog, then its worker; its
    RunsChanged brings the result to the run screen (which has no poll due for an hour)."""
    app = app_for(seeded)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        app.screen.post_message(NewRunRequested())
        await pilot_wait_for(pilot, lambda: isinstance(app.screen, NewRunModal),
                             what="new-run modal")
        await pilot.press("escape")
        screen = RunScreen(app.services, B8)
        await app.push_screen(screen)
        await pilot_wait_for(pilot, lambda: screen.run)

        async def dialog(message, kind):
            screen.post_message(message)
            return await pilot_wait_for(pilot, lambda: isinstance(app.screen, kind) and app.screen,
                                        what=f"the app's answer to {type(message).__name__}")

        confirm = await dialog(StopRequested(B8, "b8"), ConfirmModal)
        assert confirm.question.startswith(f"Stop b8 ({B8})?")
        await pilot.press("n")
        prompt = await dialog(ResumeRequested(B8, "b8"), PromptModal)
        assert prompt.label.startswith(f"Resume b8 ({B8}) from its latest checkpoint")
        await pilot.press("escape")
        await pilot_wait_for(pilot, lambda: app.screen is screen)
        assert db_rows(seeded, "select status from runs where id = ?", B8) == [
            {"status": "stopped"}]

        prompt = await dialog(NoteRequested(B8), PromptModal)
        prompt.query_one(Input).value = "asked by message"
        await pilot.press("enter")
        note = await pilot_wait_for(pilot, lambda: next((n for n in screen.notes.values()
                                                         if n["text"] == "asked by message"), None),
                                    what="the new note on the run screen")
        prompt = await dialog(EditNoteRequested(note["id"], B8, note["text"]), PromptModal)
        assert prompt.query_one(Input).value == "asked by message"
        prompt.query_one(Input).value = "edited by message"
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: screen.notes[str(note["id"])]["text"]
                             == "edited by message", what="the edited note on the run screen")

        prompt = await dialog(ExportRequested([B8]), PromptModal)
        assert prompt.label == "Markdown training log of 1 run to:"
        log = seeded.parent / "asked.md"
        prompt.query_one(Input).value = str(log)
        await pilot.press("enter")
        await pilot_wait_for(pilot, lambda: log.exists(), what="the export")
        assert B8 in log.read_text() and "edited by message" in log.read_text()
        assert not [n for n in app.notices if n[0] == "error"], app.notices


@aio
async def test_compare_two_marked_runs(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await loaded(pilot)
        await pilot.press("c")
        assert app.notices[-1][0] == "warning"  # nothing marked yet
        await pilot.press("down", "space", "space")  # b8 and lr-high
        assert table.texts(B8)["mark"].plain == "●"
        await pilot.press("c")
        screen = await pilot_wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                                      and app.screen)
        diff = screen.query_one("#diff-table", DataTable)
        await pilot_wait_for(pilot, lambda: diff.row_count)
        rows = {str(r.key.value): [str(c) for c in diff.get_row(r.key)]
                for r in diff.ordered_rows}  # cells are Text: shown literally
        assert rows["training.batch_size"][1:] == ["16", "8"]  # lr-high, b8 (oldest first)
        assert rows["training.predictor_lr"][1:] == ["0.001", "0.0005"]
        assert "frameskip" not in rows
        assert rows["best val loss"][1].endswith("(Epoch 4)")
        assert "best z_err_pred" in rows and "best plan score" not in rows  # none evaluated
        await pilot.press("2")
        await pilot_wait_for(pilot, lambda: "lr-high train" in screen_text(app)
                             and "b8 val" in screen_text(app), what="the overlaid curves")


@aio
async def test_errors_are_notifications(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(pilot)
        table.move_cursor(3)  # baseline, completed 6/6
        await pilot.press("s")
        assert app.notices[-1] == ("warning", "baseline is completed: nothing to stop.")
        await pilot.press("r", "enter")
        await pilot_wait_for(pilot, lambda: any(s == "error" for s, _ in app.notices))
        assert "already completed 6/6 epochs" in app.notices[-1][1]
        await pilot.press("r", *"model.predictor_depth=3", "enter")
        await pilot_wait_for(pilot, lambda: "cannot change on resume" in app.notices[-1][1])
        assert app.is_running and isinstance(app.screen.query_one(RunsTable), RunsTable)
        assert db_rows(seeded, "select status from runs where id = ?", BASELINE) == [
            {"status": "completed"}]


@aio
async def test_gpu_strip_shows_the_gpu_or_no_gpu(seeded: Path) -> None:
    class NoGpu(FakeGpu):
        available, reason = False, "NVML library not found"

    for source, expected in ((FakeGpu, "GPU0 84°C 183/300 W 97% 7.9/80 GiB sw_thermal"),
                             (NoGpu, "no GPU  NVML library not found")):
        app = build_app(seeded, gpu=source, clock=lambda: NOW, poll_s=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            strip = app.screen.query_one(GpuStrip)
            await pilot_wait_for(pilot, lambda: expected in str(strip.render()))
            await loaded(pilot)
            await pilot.press("enter")
            run_screen = await pilot_wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                                              and app.screen)
            await pilot_wait_for(pilot, lambda: expected in str(
                run_screen.query_one(GpuStrip).render()))


def test_first_poll_is_fast_enough_to_be_live(seeded: Path) -> None:
    from tui.feed import fetch_runs
    from tui.services import Services
    from dinowm.config import load_project

    services = Services(load_project(seeded))
    first = fetch_runs(services, {})
    assert {r["id"] for r in first.rows} == {r[0] for r in RUNS}
    assert set(first.telemetry) == {LR_HIGH}
    start = time.perf_counter()
    again = fetch_runs(services, {r["id"]: first.versions[r["id"]] for r in first.rows})
    assert again.rows == [] and time.perf_counter() - start < 0.5


@aio
async def test_a_cluster_run_shows_its_job_state_and_nodes(seeded: Path) -> None:
    with Store(seeded.parent / "runs.db") as store:
        store.update_run(B8, slurm_job_id="4242", slurm_state="COMPLETED", slurm_nodes="gpu01",
                         slurm_restarts=1)
    app = app_for(seeded)
    async with app.run_test(size=(160, 30)) as pilot:
        table = await loaded(pilot)
        assert table.texts(B8)["placement"].plain == "job 4242 COMPLETED, requeued 1x"
        keys = [column.key for column in table.columns]  # shown after the name, for this list
        assert keys.index("placement") == keys.index("name") + 1
        assert table.texts(BASELINE)["placement"].plain == "-"
        await pilot.press("slash", *"4242", "enter")  # the filter finds a run by its job
        assert order(table) == [B8]
        screen = RunScreen(app.services, B8)
        await app.push_screen(screen)
        await pilot_wait_for(pilot, lambda: screen.run)
        await pilot_wait_for(pilot, lambda: "Slurm job 4242 COMPLETED" in screen_text(app),
                             what="the run header naming the job")

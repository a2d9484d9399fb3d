# SPDX-License-Identifier: MIT
"""The runs screen: every run, live; filter, sort, mark, and the actions on runs."""

from __future__ import annotations

from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, get_current_worker

from dinowm.rundir import ACTIVE, FINAL
from tui.cells import matches
from tui.feed import fetch_runs
from tui.messages import (
    ExportRequested,
    NewRunRequested,
    NoteRequested,
    ResumeRequested,
    RunsChanged,
    RunsPolled,
    StopRequested,
)
from tui.notices import report_failure
from tui.services import Services
from tui.widgets.gpu_strip import GpuStrip
from tui.widgets.runs_table import RunRow, RunsTable

STATUS_FILTERS = ("all", "active", *ACTIVE, *FINAL)
SORT_CYCLE = ("start", "status", "name", "epoch", "val", "zbest", "duration")


class RunsScreen(Screen[None]):
    """All runs of the project, polled from runs.db by a worker."""

    AUTO_FOCUS = "#runs"

    BINDINGS = [  # in footer order: at 80 columns everything up to Quit fits
        Binding("n", "new_run", "New"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("a", "note", "Note"),
        Binding("e", "export", "Export"),
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "filter", "Find"),
        Binding("q", "app.quit", "Quit"),
        Binding("o", "sort", "Sort"),
        Binding("f", "status", "Status"),
        Binding("Q", "queue", "Queue"),
        Binding("question_mark", "app.keys", "Keys"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.runs: dict[str, dict[str, Any]] = {}
        self.known: dict[str, tuple[Any, ...]] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.marked: set[str] = set()
        self.polls = 0
        self.loaded = False
        self.status_filter = "all"

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield Input(placeholder="/ filter: name, id, preset", id="filter", compact=True)
            yield Static(id="status")
        yield Static("No runs yet: press n to start one.", id="empty")
        yield RunsTable(id="runs")
        yield GpuStrip()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#status", Static).update(f"f status: {self.status_filter} ▸")
        self.set_interval(self.services.poll_s, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.poll_now()

    def on_screen_resume(self) -> None:
        """Shown (first, or back from another screen): poll now."""
        self.poll_now()

    def poll_now(self) -> None:
        """Poll runs.db now (after an action, on a timer, when the screen comes back)."""
        self.polls += 1
        self.poll(dict(self.known), self.polls % self.services.reconcile_every == 1)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-poll")
    def poll(self, known: dict[str, tuple[Any, ...]], reconcile_now: bool) -> None:
        """Read what changed since `known` and post it."""
        message = fetch_runs(self.services, known, reconcile_now)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.poll_now()

    def on_runs_polled(self, message: RunsPolled) -> None:
        self.apply(message)

    def apply(self, message: RunsPolled) -> None:
        """Merge a poll into the rows and move only what changed in the table."""
        for row in message.rows:
            self.runs[row["id"]] = row
        gone = set(self.runs) - set(message.versions)
        for run_id in gone:
            self.runs.pop(run_id)
            self.marked.discard(run_id)
        fetched = {row["id"] for row in message.rows}
        self.known = {
            i: v
            for i, v in message.versions.items()
            if i in self.runs and (i in fetched or self.known.get(i) == v)
        }
        self.samples = message.telemetry
        live = {i for i, r in self.runs.items() if r["status"] in ACTIVE}
        self.render_rows(fetched | live, gone)
        self.loaded = True

    def render_rows(self, dirty: set[str], gone: frozenset[str] | set[str] = frozenset()) -> None:
        """Re-render the dirty runs, honouring the filter."""
        table = self.query_one(RunsTable)
        text = self.query_one("#filter", Input).value
        status = self.status_filter
        now = self.services.clock()
        shown = {i for i in dirty if i in self.runs and matches(self.runs[i], text, status)}
        table.drop_rows(set(gone) | (dirty - shown))
        table.upsert(
            {
                i: RunRow(
                    self.runs[i],
                    self.samples.get(i, []),
                    i in self.marked,
                    now if self.runs[i]["status"] in ACTIVE else None,
                )
                for i in shown
            }
        )
        active = sum(1 for r in self.runs.values() if r["status"] in ACTIVE)
        self.sub_title = (
            f"{len(self.runs)} runs, {active} active"
            + (f", {table.row_count} shown" if table.row_count != len(self.runs) else "")
            + (f", {len(self.marked)} marked" if self.marked else "")
        )
        self.query_one("#empty").display = not self.runs

    # -- filter and sort ---------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.render_rows(set(self.runs))

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(RunsTable).focus()

    def action_status(self) -> None:
        """Next status filter: all, active, then each status."""
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + 1) % len(STATUS_FILTERS)]
        self.query_one("#status", Static).update(f"f status: {self.status_filter} ▸")
        self.render_rows(set(self.runs))

    def on_click(self, event: events.Click) -> None:
        if event.widget is not None and event.widget.id == "status":
            self.action_status()

    def action_sort(self) -> None:
        table = self.query_one(RunsTable)
        current = table.sort_column if table.sort_column in SORT_CYCLE else SORT_CYCLE[-1]
        table.sort_by(SORT_CYCLE[(SORT_CYCLE.index(current) + 1) % len(SORT_CYCLE)])

    # -- actions -----------------------------------------------------------------------------

    def current(self) -> dict[str, Any] | None:
        """The run under the cursor, or None with a hint."""
        run_id = self.query_one(RunsTable).current_id
        if run_id is None or run_id not in self.runs:
            self.notify("No run selected.", severity="warning")
            return None
        return self.runs[run_id]

    def selection(self) -> list[str]:
        """Marked runs (oldest first), else the run under the cursor."""
        if self.marked:
            return sorted(self.marked, key=lambda i: (self.runs[i]["created_at"], i))
        run = self.current()
        return [run["id"]] if run else []

    def on_runs_table_selected(self, event: RunsTable.Selected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        from tui.screens.run import RunScreen  # plots load only when a run is opened

        run = self.current()
        if run:
            self.app.push_screen(RunScreen(self.services, run["id"]))

    def action_new_run(self) -> None:
        self.post_message(NewRunRequested())

    def action_stop(self) -> None:
        run = self.current()
        if run and run["status"] not in ACTIVE:
            self.notify(f"{run['name']} is {run['status']}: nothing to stop.", severity="warning")
        elif run:
            self.post_message(StopRequested(run["id"], run.get("name") or ""))

    def action_resume(self) -> None:
        run = self.current()
        if run:
            self.post_message(ResumeRequested(run["id"], run.get("name") or ""))

    def action_note(self) -> None:
        run = self.current()
        if run:
            self.post_message(NoteRequested(run["id"]))

    def action_export(self) -> None:
        ids = self.selection()
        if ids:
            self.post_message(ExportRequested(ids))

    def action_mark(self) -> None:
        table = self.query_one(RunsTable)
        run = self.current()
        if run is None:
            return
        self.marked ^= {run["id"]}
        self.render_rows({run["id"]})
        table.move_cursor(table.cursor + 1)

    def action_queue(self) -> None:
        from tui.screens.queue import QueueScreen

        self.app.push_screen(QueueScreen(self.services))

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        ids = self.selection()
        if len(ids) < 2:
            self.notify("Mark two or more runs with space, then c.", severity="warning")
            return
        self.app.push_screen(CompareScreen(self.services, ids))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

# SPDX-License-Identifier: MIT
"""One run: header, epochs, plots, configuration, incidents, notes, the live train.log and
the evaluations of its checkpoints."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, get_current_worker

from dinowm.backends import backend_of
from dinowm.export.evaltable import evaluation_table
from dinowm.formats import fmt_duration, fmt_num, literal, literal_text, status_text, world_size
from dinowm.rundir import ACTIVE
from dinowm.views.runs import progress_bar
from tui.feed import fetch_run
from tui.messages import (
    EditNoteRequested,
    EvalRequested,
    EvalStopRequested,
    ExportRequested,
    NoteRequested,
    ResumeRequested,
    RunPolled,
    RunsChanged,
    StopRequested,
)
from tui.notices import report_failure
from tui.screens.incident import IncidentScreen
from tui.services import Services
from tui.widgets.gpu_strip import GpuStrip
from tui.widgets.log_tail import LogTail
from tui.widgets.run_plots import RunPlots
from tui.widgets.run_tables import (
    CURVE_COLUMNS,
    EVAL_COLUMNS,
    KeyedTable,
    curve_rows,
    epoch_rows,
    eval_rows,
    gpu_rows,
    incident_rows,
    note_rows,
    params_table_rows,
)

TABS = ("epochs", "plots", "config", "incidents", "notes", "log", "evaluation")
MAX_SAMPLES = 50_000


def run_header(run: dict[str, Any], now: float) -> Text:
    """'▶ running  demo-3  ID  3/6 ━━━  attempt 1  …  loss 0.12' (one or two lines)."""
    text = Text.assemble(
        status_text(run["status"]),
        "  ",
        (literal(run.get("name") or "-"), "bold"),
        "  ",
        (literal(run["id"]), "dim"),
        "  ",
    )
    text.append_text(progress_bar(run.get("epoch") or 0, run.get("epochs_target")))
    start = run.get("started_at") or run.get("created_at")
    duration = (run.get("ended_at") or now) - start if start else None
    bits = [f"attempt {run.get('attempts') or 0}", fmt_duration(duration)]
    if world_size(run) > 1:
        bits.insert(1, f"{world_size(run)} ranks")
    backend = backend_of(run)
    if backend.placement(run):
        bits.insert(1, f"{backend.where} {backend.placement(run)}")
    if run["status"] in ACTIVE:
        bits += [
            f"phase {run.get('phase') or '-'}",
            f"loss {fmt_num(run.get('last_loss'))}",
            f"{fmt_num(run.get('samples_per_s'), 3)} samples/s",
            f"ETA {fmt_duration(run.get('eta_s'))}",
        ]
    elif run.get("exit_reason"):
        bits.append(run["exit_reason"])
    text.append(literal("  " + "  ".join(bits)))
    return text


class RunScreen(Screen[None]):
    """Everything about one run, polled by a worker; the log tail follows train.log."""

    AUTO_FOCUS = "#epoch-table"

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("a", "note", "Note"),
        Binding("E", "edit_note", "Edit"),
        Binding("e", "export", "Export"),
        Binding("t", "next_tab", "Tab"),
        Binding("f", "follow", "Follow"),
        Binding("v", "evaluate", "Eval", show=False),  # the Evaluation tab says so
        Binding("x", "stop_eval", "Stop eval", show=False),
        *[Binding(str(i + 1), f"tab('{tab}')", tab, show=False) for i, tab in enumerate(TABS)],
    ]

    def __init__(self, services: Services, run_id: str) -> None:
        super().__init__()
        self.services = services
        self.run_id = run_id
        self.run: dict[str, Any] | None = None
        self.config_hash: str | None = None
        self.samples: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.epochs: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading…", id="run-head")
        with TabbedContent(initial="epochs", id="tabs"):
            with TabPane("1 Epochs", id="epochs"):
                yield KeyedTable(
                    (
                        "epoch",
                        "train",
                        "val",
                        "z_err_pred",
                        "time",
                        "samples/s",
                        "max °C",
                        "mean W",
                        "att",
                        "rollout",
                    ),
                    id="epoch-table",
                )
                yield KeyedTable(
                    ("epoch", "GPU", "max °C", "mean W", "use %", "max MiB"), id="gpu-table"
                )  # shown for a run on several GPUs
            with TabPane("2 Plots", id="plots"):
                yield RunPlots()
            with TabPane("3 Config", id="config"):
                yield KeyedTable(("key", "from", "value"), id="params")
            with TabPane("4 Incidents", id="incidents"):
                yield Static(
                    "⏎ shows the incident in full: a stall's stacks, process, log tail",
                    classes="hint",
                )
                yield KeyedTable(("time", "kind", "att", "epoch", "summary"), id="incident-list")
            with TabPane("5 Notes", id="notes"):
                yield Static("a adds a note; ⏎ or E edits the one under the cursor", classes="hint")
                yield KeyedTable(("time", "note", "by"), id="note-list")
            with TabPane("6 Log", id="log"):
                yield LogTail(None, poll_s=self.services.log_poll_s, id="log-tail")
            with TabPane("7 Evaluation", id="evaluation"):
                yield Static("", id="eval-running", classes="hint")
                yield Static(
                    "no evaluations yet: 'dinowm eval RUN' evaluates the checkpoints",
                    id="eval-best",
                    classes="hint",
                )
                yield KeyedTable(EVAL_COLUMNS, id="eval-table")
                yield Static(
                    "open-loop error against the horizon of the selected checkpoint",
                    id="eval-curve-title",
                    classes="hint",
                )
                yield KeyedTable(CURVE_COLUMNS, id="eval-curve")
        yield GpuStrip()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.poll_now()
        self.set_interval(self.services.poll_s, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.poll_now()

    def poll_now(self) -> None:
        """Read the run again now."""
        since = self.samples[-1]["t"] if self.samples else None
        self.poll(since, self.run is None or self.run.get("config_hash") != self.config_hash)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-poll")
    def poll(self, since: float | None, with_spec: bool) -> None:
        message = fetch_run(self.services, self.run_id, since, with_spec)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.poll_now()

    def on_run_polled(self, message: RunPolled) -> None:
        first = self.run is None
        self.run = run = message.run
        self.query_one("#run-head", Static).update(run_header(run, self.services.clock()))
        if message.spec is not None:
            self.config_hash = run.get("config_hash")
            self.query_one("#params", KeyedTable).set_rows(params_table_rows(message.spec))
        if message.epochs != self.epochs or first:
            self.epochs = message.epochs
            self.query_one("#epoch-table", KeyedTable).set_rows(
                epoch_rows(message.epochs), follow=True
            )
            per_gpu = self.query_one("#gpu-table", KeyedTable)
            per_gpu.display = bool(gpu_rows(message.epochs))
            per_gpu.set_rows(gpu_rows(message.epochs), follow=True)
            self.query_one(RunPlots).show_epochs(message.epochs)
        if message.evaluations != self.evaluations or first:
            self.evaluations = message.evaluations
            self.show_evaluations()
        self.show_evaluating(message.evaluating)
        self.incidents = {str(i["id"]): i for i in message.incidents}
        self.query_one("#incident-list", KeyedTable).set_rows(incident_rows(message.incidents))
        self.notes = {str(n["id"]): n for n in message.notes}
        self.query_one("#note-list", KeyedTable).set_rows(note_rows(message.notes))
        if message.telemetry or first:
            self.samples = (self.samples + message.telemetry)[-MAX_SAMPLES:]
            self.query_one(RunPlots).show_gpu(self.samples, run.get("started_at"))
        log = self.query_one(LogTail)
        if first and run.get("run_dir"):
            log.path = backend_of(run).log_path(run)
            log.follow(log.path)

    def show_evaluations(self) -> None:
        """The evaluations table (best by planning first), its verdict, the selected curve."""
        ev = evaluation_table(self.evaluations, {self.run_id: self.epochs})
        self.query_one("#eval-table", KeyedTable).set_rows(eval_rows(ev))
        if ev.rows:
            self.query_one("#eval-best", Static).update(
                literal_text(
                    (ev.verdict(with_run=False) or "") + "  ★ best by planning  ◆ best by val loss"
                )
            )
        self.show_curve()

    def show_evaluating(self, evaluating: dict[str, Any] | None) -> None:
        """The running evaluation's progress line (x stops it), or the keys' hint."""
        line = self.query_one("#eval-running", Static)
        if evaluating:
            total = evaluating.get("total")
            line.update(
                literal_text(
                    f"evaluating (pid {evaluating['pid']}): {evaluating['done']}/"
                    f"{total if total is not None else '?'} {evaluating['what']}"
                    "  · x stops it"
                )
            )
        else:
            line.update(
                "v evaluates this run's checkpoints in the background (options as "
                "'dinowm eval'); x stops a running evaluation"
            )

    def show_curve(self) -> None:
        key = self.query_one("#eval-table", KeyedTable).current_key
        row = next((e for e in self.evaluations if e["checkpoint"] == key), None)
        self.query_one("#eval-curve-title", Static).update(
            literal_text(
                f"open-loop error against the horizon: {key}"
                if row
                else "open-loop error against the horizon of the selected checkpoint"
            )
        )
        self.query_one("#eval-curve", KeyedTable).set_rows(curve_rows(row))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "eval-table":
            self.show_curve()

    # -- actions -----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table_id = event.data_table.id
        if table_id == "incident-list":
            event.stop()
            self.open_incident(str(event.row_key.value))
        elif table_id == "note-list":
            event.stop()
            self.action_edit_note()

    def open_incident(self, key: str) -> None:
        incident = self.incidents.get(key)
        if incident:
            self.app.push_screen(IncidentScreen(incident, f"{self.run_id} · incident {key}"))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Keys act on what the tab shows: focus its table or log."""
        pane = self.query_one(f"#{event.pane.id}", TabPane)
        target = (
            pane.query("KeyedTable, LogTail").first() if pane.query("KeyedTable, LogTail") else None
        )
        if target is not None:
            target.focus()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)]

    def action_follow(self) -> None:
        on = self.query_one(LogTail).toggle_follow()
        self.notify(f"log follow {'on' if on else 'off'}")

    def action_stop(self) -> None:
        if self.run and self.run["status"] not in ACTIVE:
            self.notify(
                f"{self.run['id']} is {self.run['status']}: nothing to stop.", severity="warning"
            )
        elif self.run:
            self.post_message(StopRequested(self.run_id, self.run.get("name") or ""))

    def action_resume(self) -> None:
        if self.run:
            self.post_message(ResumeRequested(self.run_id, self.run.get("name") or ""))

    def action_evaluate(self) -> None:
        if self.run:
            self.post_message(EvalRequested(self.run_id, self.run.get("name") or ""))

    def action_stop_eval(self) -> None:
        self.post_message(EvalStopRequested(self.run_id))

    def action_note(self) -> None:
        self.post_message(NoteRequested(self.run_id))

    def action_edit_note(self) -> None:
        key = self.query_one("#note-list", KeyedTable).current_key
        if key is None or key not in self.notes:
            self.action_tab("notes")
            self.notify("No note to edit: add one with a.", severity="warning")
            return
        note = self.notes[key]
        self.post_message(EditNoteRequested(note["id"], note["run_id"], note["text"]))

    def action_export(self) -> None:
        self.post_message(ExportRequested([self.run_id]))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

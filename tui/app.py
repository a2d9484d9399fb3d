# SPDX-License-Identifier: MIT
"""dinowm-tui: the app, its factory and entry point; runs the actions in named workers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, get_current_worker

from dinowm.alerts.settings import for_project as alert_settings
from dinowm.alerts.watch import Watch
from dinowm.config import Project, load_project
from dinowm.errors import DinowmError
from dinowm.formats import literal
from dinowm.runs import gpu_ranks
from tui import operations
from tui.feed import fetch_alerts
from tui.messages import (
    ActionDone,
    AlertsPolled,
    EditNoteRequested,
    EvalRequested,
    EvalStopRequested,
    ExportRequested,
    GpuSampled,
    NewRunRequested,
    NoteRequested,
    QueueMoveRequested,
    QueuePauseRequested,
    QueueRemoveRequested,
    ResumeRequested,
    RunsChanged,
    StopRequested,
)
from tui.notices import report_failure
from tui.screens.dialogs import ConfirmModal, PromptModal
from tui.screens.new_run import LaunchSpec, NewRunModal
from tui.screens.runs import RunsScreen
from tui.services import GpuSource, Services
from tui.widgets.gpu_strip import GpuStrip


class DinowmApp(App[None]):
    """Runs of one project: watch, launch, stop, resume, annotate, compare, export."""

    TITLE = "dinowm"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False  # its footer slot goes to our own keys
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "keys", "Keys")]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.gpu_rows: list[dict[str, Any]] = []
        self.gpu_reason = "starting" if services.gpu else "GPU sampling off"
        self.notices: list[tuple[str, str]] = []
        alerts = alert_settings(services.project)  # a bad [alerts] table: refused at start
        self.alert_watch = Watch(alerts) if alerts is not None and alerts.tui else None
        self.alert_polling = False

    def get_default_screen(self) -> RunsScreen:
        """The runs screen is the bottom of the stack: Escape never leaves it."""
        return RunsScreen(self.services)

    def on_mount(self) -> None:
        if self.services.gpu is not None:
            self.sample_gpus(self.services.gpu)
        if self.alert_watch is not None:
            self.poll_alerts_now()  # the baseline: what happened before the app is not news
            self.set_interval(self.services.poll_s, self.poll_alerts_now)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is also kept in `notices` (the last 50); its text is shown as it
        reads (names and errors are foreign text: never markup, control characters visible)."""
        self.notices = [*self.notices[-49:], (str(severity), message)]
        super().notify(
            literal(message, lines=True),
            title=literal(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # -- GPU strip ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpu")
    def sample_gpus(self, open_source: Callable[[], GpuSource]) -> None:
        """Open the GPU source and sample it every gpu_interval_s until the app ends."""
        worker = get_current_worker()
        source = open_source()
        try:
            while not worker.is_cancelled:
                rows = source.sample() if source.available else []
                self.post_message(GpuSampled(rows, "" if rows else source.reason))
                if not source.available:
                    return  # "no GPU" is a normal state: nothing more to sample
                deadline = time.monotonic() + self.services.gpu_interval_s
                while not worker.is_cancelled and time.monotonic() < deadline:
                    time.sleep(0.2)
        finally:
            source.close()

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        self.gpu_rows, self.gpu_reason = message.rows, message.reason
        for screen in self.screen_stack:
            for strip in screen.query(GpuStrip):
                strip.rows, strip.reason = message.rows, message.reason

    # -- alerts: a bell and a notification for each new event of [alerts] ------------------

    def poll_alerts_now(self) -> None:
        """One alert poll at a time, so that their answers arrive in order."""
        if self.alert_watch is not None and not self.alert_polling:
            self.alert_polling = True
            watch = self.alert_watch
            self.poll_alerts(watch.after_id if watch.statuses is not None else None, watch.kinds)

    @work(thread=True, exit_on_error=False, group="alerts")
    def poll_alerts(self, after_id: int | None, kinds: tuple[str, ...]) -> None:
        try:
            self.post_message(fetch_alerts(self.services, after_id, kinds))
        finally:
            self.alert_polling = False

    def on_alerts_polled(self, message: AlertsPolled) -> None:
        if self.alert_watch is None:
            return
        for alert in self.alert_watch.observe(
            message.runs, message.incidents, message.max_id, message.queue
        ):
            self.bell()
            self.notify(
                alert.body,
                title=alert.title,
                markup=False,
                timeout=15,
                severity="information" if alert.event == "completed" else "warning",
            )

    # -- actions the screens request ---------------------------------------------------------

    def on_new_run_requested(self, message: NewRunRequested) -> None:
        """The new-run modal, then launch in a worker."""

        def start(spec: LaunchSpec | None) -> None:
            if spec is not None and spec.queue:
                self.enqueue(spec)
            elif spec is not None:
                self.notify(f"starting a {spec.preset} run…")
                self.launch(spec)

        self.push_screen(NewRunModal(self.services.project, self.services.initial_overrides), start)

    def on_stop_requested(self, message: StopRequested) -> None:
        """Confirm, then request a graceful stop."""
        run_id = message.run_id

        def answer(yes: bool | None) -> None:
            if yes:
                self.stop_run(run_id)

        self.push_screen(
            ConfirmModal(
                "Stop run",
                f"Stop {message.name} ({run_id})? It finishes the step, "
                f"saves a checkpoint and ends as 'stopped'; resume it later.",
                "Stop",
            ),
            answer,
        )

    def on_resume_requested(self, message: ResumeRequested) -> None:
        """Optional resumable overrides (e.g. training.epochs=150), then resume."""
        run_id = message.run_id

        def answer(text: str | None) -> None:
            if text is not None:
                self.resume_run(run_id, text)

        self.push_screen(
            PromptModal(
                "Resume run",
                f"Resume {message.name} ({run_id}) from its latest "
                f"checkpoint. Overrides (optional, resumable keys only):",
                placeholder="training.epochs=150",
                allow_empty=True,
            ),
            answer,
        )

    def on_eval_requested(self, message: EvalRequested) -> None:
        """`dinowm eval` options (the public planner's defaults when left empty), then start."""
        run_id = message.run_id

        def answer(text: str | None) -> None:
            if text is not None:
                self.evaluate_run(run_id, text)

        self.push_screen(
            PromptModal(
                "Evaluate run",
                f"Evaluate {message.name} ({run_id}): rollouts and planning to "
                "held-out goals, in the background. Options of 'dinowm eval' "
                "(empty: the latest checkpoint, CEM and GD at the public defaults):",
                value="--checkpoint latest",
                allow_empty=True,
            ),
            answer,
        )

    def on_eval_stop_requested(self, message: EvalStopRequested) -> None:
        self.stop_evaluation(message.run_id)

    def on_note_requested(self, message: NoteRequested) -> None:
        """A note on a run."""
        run_id = message.run_id

        def answer(text: str | None) -> None:
            if text is not None:
                self.note_run(run_id, text)

        self.push_screen(
            PromptModal(
                "Add note", f"Note on run {run_id}:", placeholder="lr too high; fan curve JW"
            ),
            answer,
        )

    def on_edit_note_requested(self, message: EditNoteRequested) -> None:
        """Edit a note's text."""
        note_id, run_id = message.note_id, message.run_id

        def answer(text: str | None) -> None:
            if text is not None:
                self.edit_note(note_id, text, run_id)

        self.push_screen(
            PromptModal("Edit note", f"Note {note_id} on run {run_id}:", value=message.text), answer
        )

    def on_export_requested(self, message: ExportRequested) -> None:
        """Where to write the Markdown log of the requested runs."""
        run_ids = message.run_ids
        what = f"{len(run_ids)} run{'s' * (len(run_ids) != 1)}" if run_ids else "all runs"

        def answer(path: str | None) -> None:
            if path is not None:
                self.export(path, run_ids)

        self.push_screen(
            PromptModal(
                "Export log", f"Markdown training log of {what} to:", value="training_log.md"
            ),
            answer,
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch")
    def launch(self, spec: LaunchSpec) -> None:
        row = operations.launch(
            self.services, spec.preset, spec.overrides, spec.name, spec.note, spec.gpus
        )
        self.post_message(ActionDone(f"run {row['id']} ({row['name']}) started", [row["id"]]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue")
    def enqueue(self, spec: LaunchSpec) -> None:
        overrides = spec.overrides
        if spec.gpus:
            overrides = [*overrides, f"dist.nproc_per_node={gpu_ranks(spec.gpus)}"]
        entry = operations.enqueue(self.services, spec.preset, overrides, spec.name)
        self.post_message(
            ActionDone(
                f"queued entry {entry['id']} ({entry['name'] or spec.preset})"
                f"; the queue screen (Q) starts it"
            )
        )

    def on_queue_move_requested(self, message: QueueMoveRequested) -> None:
        self.move_entry(message.entry_id, message.where)

    def on_queue_remove_requested(self, message: QueueRemoveRequested) -> None:
        """Confirm, then remove the entry."""
        entry_id = message.entry_id

        def answer(yes: bool | None) -> None:
            if yes:
                self.remove_entry(entry_id)

        self.push_screen(
            ConfirmModal(
                "Remove queue entry",
                f"Remove entry {entry_id} ({message.name}) from the queue?",
                "Remove",
            ),
            answer,
        )

    def on_queue_pause_requested(self, message: QueuePauseRequested) -> None:
        self.pause_queue(message.paused)

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue")
    def move_entry(self, entry_id: int, where: str) -> None:
        ids = operations.move_entry(self.services, entry_id, where)
        self.post_message(ActionDone(f"entry {entry_id} at position {ids.index(entry_id) + 1}"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue")
    def remove_entry(self, entry_id: int) -> None:
        operations.remove_entry(self.services, entry_id)
        self.post_message(ActionDone(f"removed entry {entry_id} from the queue"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue")
    def pause_queue(self, paused: bool) -> None:
        pid = operations.pause_queue(self.services, paused)
        self.post_message(
            ActionDone(
                "queue paused: the current run goes on"
                if paused
                else f"queue started (queue supervisor pid {pid})"
                if pid
                else "queue unpaused"
            )
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="stop")
    def stop_run(self, run_id: str) -> None:
        row = operations.stop(self.services, run_id)
        self.post_message(ActionDone(f"stop requested for {row['name']} ({run_id})", [run_id]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def resume_run(self, run_id: str, text: str) -> None:
        row = operations.resume(self.services, run_id, operations.parse_overrides(text))
        self.post_message(ActionDone(f"run {row['name']} ({run_id}) resumed", [run_id]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate")
    def evaluate_run(self, run_id: str, text: str) -> None:
        pid = operations.evaluate(self.services, run_id, text)
        self.post_message(
            ActionDone(f"evaluating {run_id} in the background (pid {pid})", [run_id])
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate")
    def stop_evaluation(self, run_id: str) -> None:
        pid = operations.stop_evaluation(self.services, run_id)
        self.post_message(
            ActionDone(
                f"asked the evaluation of {run_id} (pid {pid}) to stop"
                if pid
                else f"no evaluation of {run_id} is running",
                [run_id],
            )
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="note")
    def note_run(self, run_id: str, text: str) -> None:
        operations.add_note(self.services, run_id, text)
        self.post_message(ActionDone(f"note added to {run_id}", [run_id]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="note")
    def edit_note(self, note_id: int, text: str, run_id: str) -> None:
        operations.edit_note(self.services, note_id, text)
        self.post_message(ActionDone(f"note {note_id} edited", [run_id]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def export(self, path: str, run_ids: list[str]) -> None:
        written = operations.export_log(self.services, Path(path), run_ids)
        self.post_message(
            ActionDone(f"exported {len(run_ids) or 'all'} run(s) to {written}", run_ids)
        )

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, markup=False)
        for screen in self.screen_stack:
            screen.post_message(RunsChanged())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

    def action_keys(self) -> None:
        """Show every key of the current screen."""
        if self.screen.query("KeyPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()


def build_app(
    config: str | Path | None = None, *, project: Project | None = None, **overrides: Any
) -> DinowmApp:
    """The real app for a dinowm.toml (discovered like the CLI when None); tests swap services."""
    project = project or load_project(config)
    return DinowmApp(Services(project=project, **overrides))


def main(argv: list[str] | None = None) -> None:
    """Entry point of `dinowm-tui [PATH/dinowm.toml]`."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: dinowm-tui [PATH]  (PATH: a dinowm.toml or its folder; default: found "
            "like the dinowm command)"
        )
        return
    try:
        app = build_app(args[0] if args else None)
    except DinowmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    app.run()


if __name__ == "__main__":  # pragma: no cover
    main()

# SPDX-License-Identifier: MIT
"""The queue screen: its entries and their states, reorder, remove, pause and start."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from dinowm.formats import literal_text, status_text
from tui.feed import fetch_queue
from tui.messages import (
    NewRunRequested,
    QueueMoveRequested,
    QueuePauseRequested,
    QueuePolled,
    QueueRemoveRequested,
    RunsChanged,
)
from tui.notices import report_failure
from tui.services import Services
from tui.widgets.gpu_strip import GpuStrip

COLUMNS = ("pos", "id", "name", "state", "run", "sweep", "overrides")


class QueueScreen(Screen[None]):
    """Entries in the order they run (started ones first), polled from runs.db."""

    AUTO_FOCUS = "#queue-table"

    BINDINGS = [
        Binding("u", "move('up')", "Up"),
        Binding("d", "move('down')", "Down"),
        Binding("x", "remove", "Remove"),
        Binding("p", "pause", "Pause"),
        Binding("g", "start", "Start"),
        Binding("n", "new", "Add"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.entries: list[dict[str, Any]] = []
        self.paused = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the queue…", id="queue-head")
        yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield GpuStrip()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "queue"
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.set_interval(self.services.poll_s, self.poll_now)
        self.poll_now()

    def on_runs_changed(self, message: RunsChanged) -> None:
        self.poll_now()

    def poll_now(self) -> None:
        if self.is_current:
            self.poll()

    @work(thread=True, exclusive=True, exit_on_error=False, group="queue-poll")
    def poll(self) -> None:
        polled = fetch_queue(self.services)
        if not get_current_worker().is_cancelled:
            self.post_message(polled)

    def on_queue_polled(self, message: QueuePolled) -> None:
        self.entries, self.paused = message.entries, message.paused
        who = (
            f"queue supervisor pid {message.supervisor}"
            if message.supervisor
            else "no queue supervisor: g starts one"
        )
        queued = sum(e["state"] == "queued" for e in self.entries)
        self.query_one("#queue-head", Static).update(
            literal_text(
                f"{queued} queued · {'paused · ' if self.paused else ''}{who}"
                + (f" · {message.status}" if message.status else "")
            )
        )
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for e in self.entries:
            table.add_row(
                Text(str(e["position"] or "-")),
                Text(str(e["id"])),
                literal_text(e["name"] or e["preset"]),
                status_text(e["state"]),
                literal_text(e["run_id"] or "-"),
                literal_text(e["sweep_id"] or "-"),
                literal_text(" ".join(e["overrides"])),
                key=str(e["id"]),
            )
        if self.entries:
            table.move_cursor(row=min(row, len(self.entries) - 1))

    def current(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row >= len(self.entries):
            return None
        return self.entries[table.cursor_row]

    def action_move(self, where: str) -> None:
        entry = self.current()
        if entry is None:
            return
        if entry["state"] != "queued":
            self.notify(
                f"entry {entry['id']} is {entry['state']}: only queued entries move.",
                severity="warning",
            )
            return
        self.post_message(QueueMoveRequested(entry["id"], where))
        table = self.query_one(DataTable)  # the cursor follows the entry
        queued = [e for e in self.entries if e["state"] == "queued"]
        step = -1 if where == "up" else 1
        if 0 <= queued.index(entry) + step < len(queued):
            table.move_cursor(row=table.cursor_row + step)

    def action_remove(self) -> None:
        entry = self.current()
        if entry is not None:
            self.post_message(QueueRemoveRequested(entry["id"], entry["name"] or entry["preset"]))

    def action_pause(self) -> None:
        self.post_message(QueuePauseRequested(True))

    def action_start(self) -> None:
        self.post_message(QueuePauseRequested(False))

    def action_new(self) -> None:
        self.post_message(NewRunRequested())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

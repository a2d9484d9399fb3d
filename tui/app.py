"""The Textual app: a live table of the runs in runs.db."""

from __future__ import annotations

import sys

from textual import work
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header

from dinowm.config import load_project
from dinowm.errors import DinowmError
from dinowm.store import Store
from dinowm.views import fmt_duration, fmt_num, fmt_time, run_duration, status_text

COLUMNS = ("id", "name", "preset", "status", "epoch", "train loss", "val loss",
           "best z_err_pred", "start", "duration")


class DinowmApp(App):
    """Runs of one project, refreshed from runs.db every few seconds."""

    TITLE = "dinowm"
    BINDINGS = [("r", "refresh", "Refresh"), ("q", "quit", "Quit")]

    def __init__(self, db_path: str, poll_s: float = 2.0):
        super().__init__()
        self.db_path = db_path
        self.poll_s = poll_s

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_refresh()
        self.set_interval(self.poll_s, self.action_refresh)

    def action_refresh(self) -> None:
        self.load_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll")
    def load_runs(self) -> None:
        with Store(self.db_path) as store:
            rows = store.runs()
        self.call_from_thread(self.show_runs, rows)

    def show_runs(self, rows: list[dict]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            table.add_row(r["id"], r.get("name") or "", r.get("preset") or "",
                          status_text(r["status"]),
                          f"{r['epoch']}/{r.get('epochs_target') or '?'}",
                          fmt_num(r.get("last_train_loss")), fmt_num(r.get("last_val_loss")),
                          fmt_num(r.get("best_z_err_pred")),
                          fmt_time(r.get("started_at") or r.get("created_at")),
                          fmt_duration(run_duration(r)), key=r["id"])


def main() -> None:
    """Entry point of `dinowm-tui`."""
    try:
        project = load_project(sys.argv[1] if len(sys.argv) > 1 else None)
    except DinowmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    DinowmApp(str(project.runs_db)).run()


if __name__ == "__main__":  # pragma: no cover
    main()

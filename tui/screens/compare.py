# SPDX-License-Identifier: MIT
"""Two or more runs side by side: the hyperparameters that differ against each run's best val
loss, z_err_pred and plan score (the comparison of the exported log), and overlaid loss
curves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, TabbedContent, TabPane
from textual.worker import Worker, get_current_worker
from textual_plotext import PlotextPlot

from dinowm.export.compare import results
from dinowm.formats import literal, literal_text
from tui.feed import fetch_compare
from tui.notices import report_failure
from tui.services import Services
from tui.widgets.gpu_strip import GpuStrip
from tui.widgets.run_plots import series

COLORS = ("blue", "orange", "green", "magenta", "cyan", "red", "yellow", "white")


def differing(runs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(key, value per run) for every key whose value is not the same in all runs."""
    keys = sorted({k for r in runs for k in r["config"]})
    rows = [("preset", [literal(r["run"].get("preset") or "-") for r in runs])]
    for key in keys:
        values = [literal(r["config"].get(key, "-")) for r in runs]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows


@dataclass
class Compared(Message):
    """Data of the compared runs."""

    runs: list[dict[str, Any]]


class CompareScreen(Screen[None]):
    """Config differences in a table, train (solid) and val (dots) loss of each run overlaid."""

    AUTO_FOCUS = "#diff-table"

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "next_tab", "Tab"),
        Binding("1", "tab('diff')", "diff", show=False),
        Binding("2", "tab('curves')", "curves", show=False),
    ]

    def __init__(self, services: Services, run_ids: list[str]) -> None:
        super().__init__()
        self.services = services
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="diff", id="compare-tabs"):
            with TabPane("1 Hyperparameters that differ, results", id="diff"):
                yield DataTable(id="diff-table", zebra_stripes=True)
            with TabPane("2 Loss curves", id="curves"):
                yield PlotextPlot(id="compare-plot")
        yield GpuStrip()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_ids)} runs"
        self.load(self.run_ids)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def load(self, run_ids: list[str]) -> None:
        runs = fetch_compare(self.services, run_ids)
        if not get_current_worker().is_cancelled:
            self.post_message(Compared(runs))

    def on_compared(self, message: Compared) -> None:
        runs = message.runs
        table = self.query_one("#diff-table", DataTable)
        table.add_column("key", key="key")
        for i, r in enumerate(runs):
            table.add_column(
                literal_text(
                    r["run"].get("name") or r["run"]["id"], f"bold {COLORS[i % len(COLORS)]}"
                ),
                key=r["run"]["id"],
            )
        for key, values in differing(runs):
            table.add_row(literal_text(key), *map(Text, values), key=key)
        outcomes = [results(r["epochs"], r.get("evaluations") or []) for r in runs]
        for label in outcomes[0] if outcomes else ():
            found = [o[label] for o in outcomes]
            if label != "best plan score" or any(found):
                table.add_row(
                    Text(label, style="bold"), *(Text(v or "-") for v in found), key=label
                )
        plot = self.query_one("#compare-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_figure()
        plt.title("train loss (lines) and val loss (dots) per epoch")
        for i, r in enumerate(runs):
            name, color = literal(r["run"].get("name") or r["run"]["id"]), COLORS[i % len(COLORS)]
            xs, ys = series(r["epochs"], "epoch", "train_loss")
            if xs:
                plt.plot(xs, ys, label=f"{name} train", color=color, marker="braille")
            xs, ys = series(r["epochs"], "epoch", "val_loss")
            if xs:
                plt.scatter(xs, ys, label=f"{name} val", color=color, marker="dot")
        plt.xlabel("epoch")
        plot.refresh()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "curves" if tabs.active == "diff" else "diff"

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

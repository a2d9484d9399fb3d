# SPDX-License-Identifier: MIT
"""The runs table: virtual, renders only the rows on screen, each once per change of its run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from dinowm.views import runs as view

CACHE = 4000


@dataclass
class RunRow:
    """What one row shows: the run's summary, its latest GPU samples, the mark, and the clock
    (given only for active runs, whose duration moves on with every tick)."""

    run: dict[str, Any]
    samples: list[dict[str, Any]]
    marked: bool
    now: float | None

    def values(self) -> dict[str, Any]:
        """Raw column values (see dinowm.views.runs.values)."""
        return view.values(self.run, self.samples, self.now or 0.0, self.marked)


class RunsTable(ScrollView, can_focus=True):
    """Runs by id, sorted by one column (click a header, or the screen's sort key)."""

    BINDINGS = [
        Binding("enter", "select", "Open", key_display="⏎"),
        Binding("up", "move(-1)", show=False),
        Binding("down", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1_000_000)", show=False),
        Binding("end", "move(1_000_000)", show=False),
    ]
    COMPONENT_CLASSES = {"runs-table--header", "runs-table--cursor", "runs-table--odd"}
    DEFAULT_CSS = """
    RunsTable { background: $surface; }
    RunsTable > .runs-table--header { text-style: bold; background: $panel; }
    RunsTable > .runs-table--odd { background: $surface-lighten-1; }
    RunsTable > .runs-table--cursor { background: $block-cursor-blurred-background; }
    RunsTable:focus > .runs-table--cursor { background: $block-cursor-background; }
    """

    @dataclass
    class Selected(Message):
        """Enter, or a click on the row under the cursor."""

        run_id: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, RunRow] = {}
        self.versions: dict[str, int] = {}
        self.order: list[str] = []
        self.cursor = 0
        self.sort_column, self.sort_reverse = "start", True
        self.columns: tuple[view.Column, ...] = view.columns()
        self.widths = {c.key: max(c.width, len(c.label) + 1) for c in self.columns}
        self.rendered = 0  # rows formatted so far (a poll should add only the changed ones)
        self._layout = 0
        self._texts: dict[str, tuple[int, dict[str, Text]]] = {}
        self._strips: dict[tuple[Any, ...], Strip] = {}

    # -- data ---------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.order)

    @property
    def current_id(self) -> str | None:
        """Run id under the cursor."""
        return self.order[self.cursor] if self.order else None

    def upsert(self, rows: dict[str, RunRow]) -> None:
        """Add new runs and take changed ones; re-sort only when the order may change."""
        keep, resort = self.current_id, False
        for run_id, row in rows.items():
            old = self.rows.get(run_id)
            if old == row:
                continue
            self.rows[run_id] = row
            self.versions[run_id] = self.versions.get(run_id, 0) + 1
            if old is None:
                self.order.append(run_id)
            resort = resort or old is None or self._sort_value(old) != self._sort_value(row)
            if "placement" not in self.widths and row.values()["placement"]:
                self.columns = view.columns(placed=True)  # once a listed run has one
                self.widths = {
                    c.key: self.widths.get(c.key, max(c.width, len(c.label) + 1))
                    for c in self.columns
                }
                self._layout += 1
            for key in ("name", "preset"):
                self._widen(key, len(str(row.run.get(key) or "-")))

        if resort:
            self._sort(keep)
        self._resize()

    def drop_rows(self, run_ids: set[str]) -> None:
        """Drop rows (deleted runs, or filtered out)."""
        gone = run_ids & set(self.rows)
        if not gone:
            return
        keep = self.current_id
        for run_id in gone:
            del self.rows[run_id]
            self._texts.pop(run_id, None)
        self.order = [i for i in self.order if i not in gone]
        self._place_cursor(keep if keep not in gone else None, self.cursor)
        self._resize()

    def texts(self, run_id: str) -> dict[str, Text]:
        """The cell texts of a run, formatted once per version."""
        version = self.versions[run_id]
        cached = self._texts.get(run_id)
        if cached is None or cached[0] != version:
            self.rendered += 1
            cached = (version, view.texts(self.rows[run_id].values()))
            self._texts[run_id] = cached
        return cached[1]

    # -- sorting and cursor -------------------------------------------------------------------

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by a column; the same column again flips the direction."""
        if reverse is None:
            first = next((c.descending for c in self.columns if c.key == column), False)
            reverse = not self.sort_reverse if column == self.sort_column else first
        self.sort_column, self.sort_reverse = column, reverse
        self._sort(self.current_id)

    def _sort_value(self, row: RunRow) -> Any:
        return view.sort_key(self.sort_column, row.values()[self.sort_column])

    def _sort(self, keep: str | None) -> None:
        keys = {i: self._sort_value(self.rows[i]) for i in self.order}
        self.order.sort(key=lambda i: (keys[i], i), reverse=self.sort_reverse)
        self._place_cursor(keep, 0)
        self._layout += 1
        self.refresh()

    def _place_cursor(self, keep: str | None, fallback: int) -> None:
        row = self.order.index(keep) if keep in self.rows else fallback
        self.move_cursor(row, scroll=keep is not None)

    def move_cursor(self, row: int, scroll: bool = True) -> None:
        """Put the cursor on a row (clamped) and keep it in view."""
        self.cursor = max(0, min(row, len(self.order) - 1))
        if scroll:
            top, rows = round(self.scroll_y), max(1, self.size.height - 1)
            if self.cursor < top:
                self.scroll_to(y=self.cursor, animate=False)
            elif self.cursor >= top + rows:
                self.scroll_to(y=self.cursor - rows + 1, animate=False)
        self.refresh()

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor + delta)

    def action_page(self, pages: int) -> None:
        self.move_cursor(self.cursor + pages * max(1, self.size.height - 2))

    def action_select(self) -> None:
        if self.current_id is not None:
            self.post_message(self.Selected(self.current_id))

    def on_click(self, event: events.Click) -> None:
        x, y = event.x + round(self.scroll_x), event.y
        if y == 0:
            column = self._column_at(x)
            if column:
                self.sort_by(column)
            return
        row = round(self.scroll_y) + y - 1
        if 0 <= row < len(self.order):
            if row == self.cursor:
                self.action_select()
            self.move_cursor(row)

    def _column_at(self, x: int) -> str | None:
        for column in self.columns:
            x -= self.widths[column.key] + 2
            if x < 0:
                return column.key
        return None

    # -- rendering ----------------------------------------------------------------------------

    def _widen(self, key: str, width: int) -> None:
        limit = next((c.max_width for c in self.columns if c.key == key), None)
        width = min(width, limit or width)
        if width > self.widths[key]:
            self.widths[key] = width
            self._layout += 1

    def _resize(self) -> None:
        total = sum(w + 2 for w in self.widths.values())
        self.virtual_size = Size(total, len(self.order) + 1)
        self.refresh()

    def _line(self, cells: dict[str, Text], base: Style) -> Strip:
        line = Text(style=base, no_wrap=True, end="")
        for column in self.columns:
            text, width = cells[column.key], self.widths[column.key]
            if text.cell_len > width:
                text = text.copy()
                text.truncate(width, overflow="ellipsis")
            pad = " " * (width - text.cell_len)
            right = column.justify == "right"
            line.append(" " + pad if right else " ")
            line.append_text(text)
            line.append(" " if right else pad + " ")
        segments = list(line.render(self.app.console))
        return Strip(segments, line.cell_len)

    def _header(self) -> Strip:
        labels = {}
        for column in self.columns:
            arrow = ("▼" if self.sort_reverse else "▲") if column.key == self.sort_column else ""
            labels[column.key] = Text(column.label + arrow)
        style = self.get_component_rich_style("runs-table--header")
        return self._line(labels, self.rich_style + style)

    def _row(self, index: int) -> Strip:
        run_id = self.order[index]
        cursor = index == self.cursor
        key = (run_id, self.versions[run_id], self._layout, index % 2, cursor, self.has_focus)
        strip = self._strips.get(key)
        if strip is None:
            cells = self.texts(run_id)
            layout = self._layout
            for column, text in cells.items():
                if column in self.widths:  # the placement column only once shown
                    self._widen(column, text.cell_len)
            if layout != self._layout:  # a wider value: lay out again once this paint is done
                self.call_later(self._resize)
            base = self.rich_style
            if index % 2:
                base += self.get_component_rich_style("runs-table--odd")
            if cursor:
                base += self.get_component_rich_style("runs-table--cursor")
            strip = self._line(cells, base)
            if len(self._strips) > CACHE:
                self._strips.clear()
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        x = round(self.scroll_x)
        index = round(self.scroll_y) + y - 1
        if y == 0:
            strip = self._header()
        elif index < len(self.order):
            strip = self._row(index)
        else:
            return Strip([Segment(" " * width, self.rich_style)], width)
        return strip.crop(x, x + width).extend_cell_length(width, self.rich_style)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

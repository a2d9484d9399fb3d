# SPDX-License-Identifier: MIT
"""A DataTable that repaints its rows after a column widened."""

from __future__ import annotations

from textual import events
from textual.widgets import DataTable


class Table(DataTable):
    """DataTable whose rendered rows are dropped when column widths are recomputed.

    Textual 8 caches rendered rows by update count, and widens columns later, on idle,
    without a new count: a row painted in between would keep its old, cut-off width.
    """

    async def _on_idle(self, event: events.Idle) -> None:
        resized = bool(self._updated_cells) or self._require_update_dimensions
        await super()._on_idle(event)
        if resized:
            self._clear_caches()
            self.refresh()

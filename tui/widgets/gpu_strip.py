# SPDX-License-Identifier: MIT
"""One line on every screen: temperature, power/limit, utilisation, memory, throttle badges."""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from dinowm.formats import literal
from dinowm.supervise.telemetry import throttle_names
from dinowm.views.runs import temp_style


def _val(row: dict[str, Any], key: str, spec: str = ".0f") -> str:
    """A row's value formatted, or '-' when it has none."""
    return "-" if row.get(key) is None else format(row[key], spec)


def gpu_text(rows: list[dict[str, Any]], reason: str) -> Text:
    """'GPU0 71°C 183/300 W 97% 7.9/80 GiB hw_thermal' per GPU, or 'no GPU (reason)'."""
    if not rows:
        return Text.assemble(("no GPU", "bold"), (f"  {literal(reason)}" if reason else "", "dim"))
    text = Text(no_wrap=True, overflow="ellipsis")
    for r in rows:
        val = partial(_val, r)
        text.append(f"GPU{r['gpu']} ", style="bold")
        text.append(f"{val('temp_c')}°C", style=temp_style(r.get("temp_c")) or "")
        text.append(f" {val('power_w')}/{val('power_limit_w')} W {val('util_pct')}%")
        if r.get("mem_used_mib") is not None:
            text.append(
                f" {r['mem_used_mib'] / 1024:.1f}/{(r.get('mem_total_mib') or 0) / 1024:.0f} GiB"
            )
        for badge in throttle_names(r.get("throttle")):
            if badge != "gpu_idle":
                text.append(f" {badge}", style="bold white on red")
        text.append("  ")
    return text


class GpuStrip(Widget):
    """The machine's GPUs now; the app sets `rows` and `reason` from its sampling worker."""

    DEFAULT_CSS = """
    GpuStrip { height: 1; padding: 0 1; background: $panel; }
    """

    rows: reactive[list[dict[str, Any]]] = reactive(list, always_update=True)
    reason: reactive[str] = reactive("starting")

    def on_mount(self) -> None:
        """Start from the app's latest sample; the app keeps every strip current after that."""
        self.rows = list(getattr(self.app, "gpu_rows", []))
        self.reason = getattr(self.app, "gpu_reason", "")

    def render(self) -> Text:
        return gpu_text(self.rows, self.reason)

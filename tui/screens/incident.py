# SPDX-License-Identifier: MIT
"""One incident in full: a stall's verdict, stuck frame, process, zombies, every stack, log tail."""

from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TextArea

from dinowm.formats import fmt_time, literal
from tui.widgets.gpu_strip import GpuStrip

ORDER = (
    "summary",
    "verdict",
    "stuck_frame",
    "process",
    "zombies",
    "children",
    "stacks",
    "stacks_note",
    "log_tail",
)


def _section(key: str, value: Any) -> list[str]:
    """Readable lines for one details entry."""
    if key == "stacks" and isinstance(value, dict):
        return [value.get("text") or "(no stack text)"]
    if key == "stuck_frame" and isinstance(value, dict):
        return [value.get("text") or json.dumps(value, default=str)]
    if key == "log_tail" and isinstance(value, list):
        return [str(line) for line in value] or ["(empty)"]
    if key == "process" and isinstance(value, dict):
        lines = [
            f"{k}: {value[k]}"
            for k in (
                "activity",
                "state_name",
                "cpu_percent",
                "cpu_used_s",
                "window_s",
                "signals_sent",
            )
            if k in value
        ]
        lines += [
            f"  thread {t.get('tid')} {t.get('name')} state {t.get('state')} "
            f"wchan {t.get('wchan')} cpu {t.get('cpu_used_s')} s"
            for t in value.get("threads", [])
        ]
        return lines
    if key == "zombies" and isinstance(value, list):
        return [
            f"[{z.get('comm')}] pid {z.get('pid')}, child of pid {z.get('ppid')} "
            f"[{z.get('parent_comm')}]"
            for z in value
        ] or ["none"]
    if isinstance(value, str):
        return value.splitlines() or [""]
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return [f"{k}: {v}" for k, v in value.items()]
    return json.dumps(value, indent=2, default=str).splitlines()


def incident_text(incident: dict[str, Any]) -> str:
    """The whole incident as text (nothing cut), shown literally: control characters visible."""
    try:
        details = json.loads(incident.get("details_json") or "{}")
    except ValueError:
        details = {"details_json": incident.get("details_json")}
    where = "  ".join(
        f"{k} {incident[k]}" for k in ("attempt", "epoch", "step") if incident.get(k) is not None
    )
    lines = [
        f"{fmt_time(incident['t'])}  {incident['kind']}  {where}".rstrip(),
        "",
        incident["summary"],
        "",
    ]
    keys = [k for k in ORDER if k in details] + sorted(k for k in details if k not in ORDER)
    for key in keys:
        if details[key] in (None, [], {}, ""):
            continue
        rule = f"── {key} " + "─" * max(0, 60 - len(key))
        lines += [rule, *_section(key, details[key]), ""]
    return literal("\n".join(lines), lines=True)


class IncidentScreen(Screen[None]):
    """A read-only, scrollable, selectable text of one incident."""

    AUTO_FOCUS = "#incident-text"

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("w", "wrap", "Wrap")]

    def __init__(self, incident: dict[str, Any], title: str) -> None:
        super().__init__()
        self.incident = incident
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Header()
        yield TextArea(
            incident_text(self.incident), read_only=True, soft_wrap=True, id="incident-text"
        )
        yield GpuStrip()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.title_text

    def action_wrap(self) -> None:
        area = self.query_one(TextArea)
        area.soft_wrap = not area.soft_wrap

# SPDX-License-Identifier: MIT
"""How values read wherever dinowm shows them: the CLI, the TUI, the export, the live display."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from rich.text import Text

STATUS_STYLE = {
    "created": ("·", "dim"),
    "running": ("▶", "green"),
    "resuming": ("↻", "yellow"),
    "stopping": ("■", "yellow"),
    "completed": ("✔", "bold green"),
    "stopped": ("■", "cyan"),
    "failed": ("✘", "bold red"),
    "lost": ("?", "magenta"),
    "pending": ("…", "yellow"),
    "cancelled": ("⊘", "magenta"),
}


def status_text(status: str) -> Text:
    """Coloured status with its symbol."""
    symbol, style = STATUS_STYLE.get(status, ("·", ""))
    return Text(f"{symbol} {status}", style=style)


def fmt_num(value: float | None, digits: int = 4) -> str:
    """Compact number: 0.01234, 1.2e-05, or '-' when missing."""
    if value is None:
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}g}"


def fmt_bytes(n: float | None) -> str:
    """Binary sizes: '512 B', '63.9 MiB', '1.4 GiB', '2.0 TiB', or '-' when missing."""
    if n is None:
        return "-"
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


def fmt_time(ts: float | None) -> str:
    """Local 'YYYY-MM-DD HH:MM' or '-'."""
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def fmt_duration(seconds: float | None) -> str:
    """'1h 02m', '3m 05s', '12s' or '-'."""
    if seconds is None:
        return "-"
    s = round(float(seconds))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def run_duration(run: dict[str, Any]) -> float | None:
    """Wall time of a run so far (until its end when it has ended)."""
    start = run.get("started_at") or run.get("created_at")
    if not start:
        return None
    return (run.get("ended_at") or time.time()) - start


def world_size(run: dict[str, Any]) -> int:
    """How many ranks the run's latest attempt trained on (its start event; 1 if unknown)."""
    try:
        start = json.loads(run.get("start_json") or "{}")
    except ValueError:
        return 1
    return int(start.get("world_size") or 1) if isinstance(start, dict) else 1

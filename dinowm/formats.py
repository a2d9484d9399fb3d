# SPDX-License-Identifier: MIT
"""How values read wherever dinowm shows them (the CLI, the TUI, the export, the live display),
foreign text shown literally."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from rich.text import Text

from dinowm.errors import ConfigError

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
    return Text(f"{symbol} {literal(status)}", style=style)


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


# Foreign text (anything dinowm did not write: notes, names, presets, incidents, log lines,
# paths, config values, exception messages) is shown, never obeyed. Every control character
# (C0 but newline and tab where allowed, DEL, C1), the bidi controls, the line and paragraph
# separators and lone surrogates read as Python writes them: ESC [31m reads '\x1b[31m', CR
# '\r', U+202E '\u202e'. A backslash of the text stays as it is.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_UNSAFE = (*range(0x20), *range(0x7F, 0xA0), *_BIDI, 0x2028, 0x2029, *range(0xD800, 0xE000))
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE} | {
    9: "\\t",
    10: "\\n",
    13: "\\r",
}
_ONE_LINE = str.maketrans(_ESCAPES)
_LINES = str.maketrans({c: e for c, e in _ESCAPES.items() if chr(c) not in "\n\t"})
_ANY = re.compile("[" + "".join(f"\\U{c:08x}" for c in _UNSAFE) + "]")  # one class of C


def literal(value: object, lines: bool = False) -> str:
    """Foreign text made safe to show: control and bidi characters escaped, visible (newlines
    and tabs kept when `lines`). Wrap it in rich.text.Text; never print it as markup."""
    text = value if isinstance(value, str) else str(value)
    if _ANY.search(text) is None:  # the usual text, in one pass of C
        return text
    return text.translate(_LINES if lines else _ONE_LINE)


def literal_text(value: object, style: str = "", lines: bool = False) -> Text:
    """literal() as a rich Text: shown as it reads, never parsed as markup."""
    return Text(literal(value, lines), style=style)


def plain_name(name: str | None, what: str = "--name") -> str | None:
    """A run's or an entry's name as given, refused when it holds a control character."""
    if name is not None and literal(name) != name:
        raise ConfigError(
            f"{what} '{literal(name)}' holds control characters (shown escaped); "
            f"give a name of printable characters, e.g. b16-lr3e-4."
        )
    return name

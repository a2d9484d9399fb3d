"""Messages that carry data up from workers and widgets (small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class RunsPolled(Message):
    """One poll of runs.db: versions of all runs, rows of the changed ones, live GPU samples."""

    versions: dict[str, tuple[Any, ...]]
    rows: list[dict[str, Any]]
    telemetry: dict[str, list[dict[str, Any]]]
    full: bool = False


@dataclass
class RunPolled(Message):
    """One poll of a single run: its row, epochs, incidents, notes and new telemetry."""

    run: dict[str, Any]
    epochs: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    telemetry: list[dict[str, Any]]
    spec: dict[str, Any] | None = None


@dataclass
class GpuSampled(Message):
    """The GPUs of this machine now (rows empty when there is no GPU, with the reason)."""

    rows: list[dict[str, Any]]
    reason: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSampled)


@dataclass
class LogLines(Message):
    """Lines read from a log file; reset replaces what is shown (first read, file replaced)."""

    path: str
    lines: list[str]
    reset: bool = False
    start: int = 0


@dataclass
class ActionDone(Message):
    """A user action finished; the screens poll again at once."""

    text: str
    run_ids: list[str] = field(default_factory=list)

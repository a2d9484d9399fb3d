# SPDX-License-Identifier: MIT
"""Messages (small dataclasses): data and requests go up to the app; RunsChanged comes down."""

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
class AlertsPolled(Message):
    """One poll for alerts: every run's status, new incidents of the alerting kinds."""

    runs: dict[str, dict[str, Any]]
    incidents: list[dict[str, Any]]
    max_id: int
    queue: dict[str, int] = field(default_factory=dict)  # entries per state


@dataclass
class RunPolled(Message):
    """One poll of a single run: its row, epochs, incidents, notes, new telemetry and its
    evaluations."""

    run: dict[str, Any]
    epochs: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    telemetry: list[dict[str, Any]]
    spec: dict[str, Any] | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # `dinowm eval`, by epoch
    evaluating: dict[str, Any] | None = None  # the running evaluation's pid and progress


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
    """A user action finished (posted by its worker); the app tells the screens to poll."""

    text: str
    run_ids: list[str] = field(default_factory=list)


@dataclass
class RunsChanged(Message, bubble=False):
    """Sent down by the app after an action: a screen that shows runs polls again at once."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


# -- requests: a screen asks, the app confirms or prompts, then runs the action in a worker --


@dataclass
class NewRunRequested(Message):
    """Open the new-run modal and launch what it returns."""


@dataclass
class StopRequested(Message):
    """Confirm, then ask the run's supervisor for a graceful stop."""

    run_id: str
    name: str = ""


@dataclass
class ResumeRequested(Message):
    """Prompt for resumable overrides, then resume the run from its latest checkpoint."""

    run_id: str
    name: str = ""


@dataclass
class NoteRequested(Message):
    """Prompt for a note on a run and add it."""

    run_id: str


@dataclass
class EditNoteRequested(Message):
    """Prompt with a note's text and save the edit."""

    note_id: int
    run_id: str
    text: str


@dataclass
class ExportRequested(Message):
    """Prompt for a path and write the Markdown training log of run_ids (all runs if empty)."""

    run_ids: list[str] = field(default_factory=list)


@dataclass
class EvalRequested(Message):
    """Prompt for `dinowm eval` options, then evaluate the run's checkpoints in the background."""

    run_id: str
    name: str = ""


@dataclass
class EvalStopRequested(Message):
    """Stop the run's running evaluation."""

    run_id: str


# -- the queue ------------------------------------------------------------------------------


@dataclass
class QueuePolled(Message):
    """One poll of the queue: entries, paused, its supervisor (pid or None), its last word."""

    entries: list[dict[str, Any]]
    paused: bool
    supervisor: int | None
    status: str | None


@dataclass
class QueueMoveRequested(Message):
    """Move a queued entry 'up' or 'down'."""

    entry_id: int
    where: str


@dataclass
class QueueRemoveRequested(Message):
    """Confirm, then remove a queue entry."""

    entry_id: int
    name: str = ""


@dataclass
class QueuePauseRequested(Message):
    """Pause the queue (paused=True) or start it (unpause, and a queue supervisor if none)."""

    paused: bool

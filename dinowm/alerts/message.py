# SPDX-License-Identifier: MIT
"""An alert's text: the run (name and id), what happened, and the one-line summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WHAT = {
    "stall": "stalled",
    "oom": "CUDA out of memory",
    "crash": "crashed",
    "failed": "failed",
    "completed": "completed",
    "thermal": "paused, GPU too hot",
    "queue_empty": "queue empty",
}
# How an attempt ended (dinowm.supervise.watchdog.Outcome.kind) → the event it alerts as.
OUTCOME_EVENTS = {
    "stall": "stall",
    "oom": "oom",
    "crash": "crash",
    "signal": "crash",
    "disk_full": "crash",
}
# Incidents in runs.db → events, for readers of the record (dinowm-tui); a thermal incident
# alerts only when it paused the trainer.
INCIDENT_EVENTS = {
    "stall": "stall",
    "oom": "oom",
    "crash": "crash",
    "exception": "crash",
    "disk_full": "crash",
    "thermal": "thermal",
}
STATUS_EVENTS = {"completed": "completed", "failed": "failed"}
MAX_SUMMARY = 400


@dataclass(frozen=True)
class Alert:
    """One alert as every target shows it."""

    event: str
    title: str
    body: str


def compose(event: str, run: Mapping[str, Any] | None = None, summary: str = "") -> Alert:
    """'demo-3 (20261130-…): stalled — <summary>'; without a run, the project speaks."""
    what = WHAT[event]
    who = f"{run.get('name') or run['id']} ({run['id']})" if run else "dinowm"
    line = " ".join(str(summary).split())
    if len(line) > MAX_SUMMARY:
        line = line[: MAX_SUMMARY - 1] + "…"
    name = f" {run.get('name') or run['id']}" if run else ""
    return Alert(event, f"dinowm{name}: {what}", f"{who}: {what}" + (f" — {line}" if line else ""))


def final_summary(status: str, run: Mapping[str, Any], reason: str | None = None) -> str:
    """What a completed or failed alert says after the run's name."""
    if status == "completed":
        return f"epoch {run.get('epoch') or 0}/{run.get('epochs_target') or '?'}"
    return reason or run.get("exit_reason") or status

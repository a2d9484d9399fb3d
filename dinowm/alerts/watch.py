# SPDX-License-Identifier: MIT
"""What a reader of runs.db alerts about (dinowm-tui): status changes and incidents that happen
after it started watching, each once."""

from __future__ import annotations

import json
from typing import Any

from dinowm.alerts.message import INCIDENT_EVENTS, STATUS_EVENTS, Alert, compose, final_summary
from dinowm.alerts.settings import AlertSettings


class Watch:
    """Feed it polls of runs.db; it returns the alerts of what changed since the last one."""

    def __init__(self, settings: AlertSettings):
        self.settings = settings
        self.statuses: dict[str, str] | None = None  # None until the first poll (the baseline)
        self.after_id = 0  # incidents up to this id are known
        self.queue_active = 0  # queued or running entries at the last poll

    @property
    def kinds(self) -> tuple[str, ...]:
        """Incident kinds worth reading."""
        return tuple(k for k, e in INCIDENT_EVENTS.items() if e in self.settings.events)

    def observe(
        self,
        runs: dict[str, dict[str, Any]],
        incidents: list[dict[str, Any]],
        max_id: int,
        queue: dict[str, int] | None = None,
    ) -> list[Alert]:
        """Alerts for new incidents (id > after_id), runs that reached a final status, and the
        queue running dry (`queue`: entries per state)."""
        first = self.statuses is None
        before = self.statuses or {}
        self.statuses = {run_id: run["status"] for run_id, run in runs.items()}
        active = sum(n for state, n in (queue or {}).items() if state in ("queued", "running"))
        was_active, self.queue_active = self.queue_active, active
        if first or max_id < self.after_id:  # the baseline, or runs.db was rebuilt (reindex)
            self.after_id = max_id
            return []
        alerts = []
        if was_active and not active and "queue_empty" in self.settings.events:
            done = ", ".join(f"{n} {state}" for state, n in sorted((queue or {}).items()))
            alerts.append(compose("queue_empty", None, f"the queue ran dry ({done})"))
        for row in incidents:
            if row["id"] <= self.after_id:
                continue
            event = INCIDENT_EVENTS.get(row["kind"])
            if (
                event == "thermal"
                and json.loads(row.get("details_json") or "{}").get("action") != "pause"
            ):
                continue
            if event in self.settings.events and row["run_id"] in runs:
                alerts.append(compose(event, runs[row["run_id"]], row["summary"]))
        self.after_id = max(max_id, self.after_id)
        for run_id, run in runs.items():
            event = STATUS_EVENTS.get(run["status"])
            if event in self.settings.events and before.get(run_id) != run["status"]:
                alerts.append(compose(event, run, final_summary(run["status"], run)))
        return alerts

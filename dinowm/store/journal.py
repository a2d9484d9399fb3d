# SPDX-License-Identifier: MIT
"""record.jsonl: what the store is told that events.jsonl does not hold, kept in the run folder.

runs.db is an index; the run folder is the durable record. Every write that `dinowm reindex`
could not recover from events.jsonl (run creation, hardware, status changes, supervisor
incidents, notes and their edits, per-epoch GPU summaries) is appended here as one JSON line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dinowm import rundir

# Run columns worth keeping across a rebuild (progress columns come back from events.jsonl).
DURABLE_FIELDS = frozenset(
    {
        "status",
        "exit_reason",
        "started_at",
        "ended_at",
        "attempts",
        "epochs_target",
        "name",
        "batch_size",
        "grad_accum",
        "micro_batch",
        "wandb_id",
        "wandb_url",
        "config_json",
        "config_hash",
        "created_at",
        "host",
        "changed_json",
        "resume_overrides_json",
        "slurm_job_id",
        "slurm_state",
        "slurm_reason",
        "slurm_nodes",
        "slurm_restarts",
    }
)


class Journal:
    """Appends records to <run_dir>/record.jsonl (inside a Slurm job: record.job.jsonl); a
    missing run folder is skipped silently."""

    def __init__(self, name: str = rundir.RECORD) -> None:
        self.name = name
        self.paused = False
        self._dirs: dict[str, Path | None] = {}

    def remember(self, run_id: str, run_dir: str | None) -> None:
        """Tell the journal where a run's folder is (saves a query per write)."""
        self._dirs[run_id] = Path(run_dir) if run_dir else None

    def known(self, run_id: str) -> bool:
        return run_id in self._dirs

    def append(self, run_id: str, kind: str, **payload: Any) -> None:
        """One record line; best effort, never raises for a vanished folder."""
        self.write(run_id, self.name, [{"t": time.time(), "kind": kind, **payload}])

    def write(self, run_id: str, name: str, items: list[dict[str, Any]]) -> None:
        """JSON lines appended to a file of the run folder; best effort, like append."""
        folder = self._dirs.get(run_id)
        if self.paused or folder is None or not folder.is_dir() or not items:
            return
        text = "".join(json.dumps(item, default=str) + "\n" for item in items)
        try:
            with open(folder / name, "a", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            pass  # the database write already succeeded; the folder is read-only or full

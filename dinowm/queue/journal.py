# SPDX-License-Identifier: MIT
"""queue.jsonl in the project's outputs folder: every change of the queue as one JSON line.

Ops: add (the entry as added), order (the queued ids in their new order), remove, start (the
run id claimed for an entry, written before the run exists), resume, end, pause. runs.db holds
the same facts; `dinowm reindex` replays this file (Store.queue_replay).
"""

from __future__ import annotations

import time
from typing import Any

from dinowm.config import Project
from dinowm.rundir import append_durably, read_jsonl


def append(project: Project, op: str, **fields: Any) -> None:
    """One line, durably (flush + fsync); a line left torn by a crash is ended first."""
    path = project.queue_journal
    path.parent.mkdir(parents=True, exist_ok=True)
    append_durably(path, {"t": time.time(), "op": op, **fields})


def lines(project: Project) -> list[dict[str, Any]]:
    """The journal's lines in file order (torn or garbled lines skipped)."""
    return read_jsonl(project.queue_journal, 0)[0]


def started(project: Project, entry_id: int) -> bool:
    """Whether the journal holds the start of an entry."""
    return any(item.get("op") == "start" and item.get("id") == entry_id for item in lines(project))

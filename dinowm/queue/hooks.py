# SPDX-License-Identifier: MIT
"""Where other features plug into the queue's life."""

from __future__ import annotations

from collections import Counter

from dinowm.config import Project
from dinowm.store import Store


def on_empty(project: Project) -> None:
    """The queue supervisor finished the last entry and nothing is queued: the `queue_empty`
    alert, with how the queue's entries ended.

    Called once, by the queue supervisor, after it ended an entry and found no other queued.
    """
    from dinowm.alerts import notify

    with Store(project.runs_db) as store:
        states = Counter(e["state"] for e in store.queue_entries())
    done = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    notify(project, "queue_empty", summary=f"the queue ran dry ({done or 'nothing queued'})")

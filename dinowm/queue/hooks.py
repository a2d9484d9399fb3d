"""Where other features plug into the queue's life."""

from __future__ import annotations

from dinowm.config import Project


def on_empty(project: Project) -> None:
    """The queue supervisor finished the last entry and nothing is queued: alerts plug in here.

    Called once, by the queue supervisor, after it ended an entry and found no other queued.
    """
    return None

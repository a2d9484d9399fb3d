# SPDX-License-Identifier: MIT
"""The runs screen's filter (the table's columns and cells are dinowm.views.runs)."""

from __future__ import annotations

from typing import Any

from dinowm.backends import backend_of
from dinowm.rundir import ACTIVE


def matches(run: dict[str, Any], text: str, status: str) -> bool:
    """The filter: status ('all', 'active' or one status) and a substring of id, name, preset,
    environment or placement (a cluster run's job and its state)."""
    if status == "active" and run["status"] not in ACTIVE:
        return False
    if status not in ("all", "active") and run["status"] != status:
        return False
    needle = text.strip().lower()
    if not needle:
        return True
    hay = " ".join(str(run.get(k) or "") for k in ("id", "name", "preset", "status", "env"))
    return needle in f"{hay} {backend_of(run).placement(run)}".lower()

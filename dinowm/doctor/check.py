# SPDX-License-Identifier: MIT
"""One row of `dinowm doctor`: the check, its status, what was found and the fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL, SKIPPED = "ok", "warn", "fail", "skipped"
STATUSES = (OK, WARN, FAIL, SKIPPED)


@dataclass(frozen=True)
class Check:
    """A finding: `found` says what is there, `fix` what to do (empty when nothing)."""

    name: str
    status: str
    found: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as --json prints it."""
        return {"check": self.name, **{k: v for k, v in asdict(self).items() if k != "name"}}


def worst(*statuses: str) -> str:
    """The most serious of several statuses (fail > warn > ok > skipped)."""
    order = (SKIPPED, OK, WARN, FAIL)
    return max(statuses, key=order.index, default=SKIPPED)


def failed(checks: list[Check]) -> list[Check]:
    """The checks that fail (a warning never makes `dinowm doctor` exit non-zero)."""
    return [c for c in checks if c.status == FAIL]

# SPDX-License-Identifier: MIT
"""Failures as notifications: a worker that raises never crashes the app or prints a traceback."""

from __future__ import annotations

from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

from dinowm.errors import DinowmError


def one_line(exc: BaseException) -> str:
    """An exception as one line (a DinowmError exactly as the CLI prints it)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(exc, DinowmError) else f"{type(exc).__name__}: {text}"


def report_failure(node: DOMNode, event: Worker.StateChanged) -> None:
    """An error notification for a worker of `node` that raised."""
    if event.state == WorkerState.ERROR and event.worker.error is not None:
        node.app.notify(one_line(event.worker.error), severity="error", timeout=8, markup=False)

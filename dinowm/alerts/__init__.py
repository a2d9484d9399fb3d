# SPDX-License-Identifier: MIT
"""Alerts: which events of runs go where (`[alerts]` of dinowm.toml), sent without waiting."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dinowm import rundir
from dinowm.alerts.deliver import Result, deliver, spawn_payload, targets
from dinowm.alerts.message import Alert, compose
from dinowm.alerts.settings import EVENTS, AlertSettings, for_project

if TYPE_CHECKING:
    from dinowm.config import Project

__all__ = ["EVENTS", "AlertSettings", "dispatch", "for_project", "notify", "send_test"]


def notify(
    project: Project, event: str, *, run: Mapping[str, Any] | None = None, summary: str = ""
) -> bool:
    """Alert `event` (of `run`, or of the project when None) to the configured targets.

    Returns at once: one detached process delivers it with the [alerts] timeout. True when an
    alert went out, False when [alerts] is absent, the event is not listed or no target is
    active. A failed delivery is one line, its target redacted, in the run's supervisor.log.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown alert event {event!r}; one of {', '.join(EVENTS)}")
    log = Path(run["run_dir"]) / rundir.SUPERVISOR_LOG if run and run.get("run_dir") else None
    return dispatch(for_project(project), compose(event, run, summary), log)


def dispatch(settings: AlertSettings | None, alert: Alert, log: Path | None = None) -> bool:
    """Start the delivery process of one alert and return; False when it would send nothing."""
    if settings is None or alert.event not in settings.events:
        return False
    if not any(not t.inactive for t in targets(settings)):
        return False
    with contextlib.ExitStack() as files:
        out = _output(log, files)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dinowm.alerts"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            print(
                f"alert '{alert.event}' not sent: cannot start {sys.executable} ({exc.strerror})",
                file=sys.stderr,
            )
            return False
    if proc.stdin is not None:  # always, with stdin=PIPE
        with contextlib.suppress(OSError):  # it died at once; its own output says why
            proc.stdin.write(spawn_payload(settings, alert))  # small: fits the pipe, never blocks
            proc.stdin.close()
    threading.Thread(target=proc.wait, name="alert-reaper", daemon=True).start()
    return True


def _output(log: Path | None, files: contextlib.ExitStack) -> IO[bytes] | int:
    """Where the delivery process writes: the run's supervisor.log, else nowhere."""
    if log is not None:
        with contextlib.suppress(OSError):
            return files.enter_context(open(log, "ab"))
    return subprocess.DEVNULL


def send_test(settings: AlertSettings, event: str = "completed") -> list[Result]:
    """A test alert of `event` to every active target, waiting for each (`dinowm alerts test`)."""
    alert = compose(event, None, f"a test of dinowm's '{event}' alert (dinowm alerts test)")
    return deliver(settings, alert)

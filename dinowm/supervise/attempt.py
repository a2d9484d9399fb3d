# SPDX-License-Identifier: MIT
"""One attempt of a run as its supervisor sees it: its trainer's start, what the attempt knows,
the periodic duties of its tick, its own slice of train.log and of the rank heartbeats."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.schema import RunConfig
from dinowm.supervise.thermal import ThermalGuard
from dinowm.supervise.watchdog import Outcome, Progress

MARKER = "--- attempt {} started"  # train.log's line before each attempt's output


@dataclass
class AttemptState:
    """What one attempt knows: its trainer, its progress, and what the trainer said last."""

    number: int
    cfg: RunConfig
    proc: subprocess.Popen[bytes]
    guard: ThermalGuard
    progress: Progress = field(
        default_factory=lambda: Progress(attempt_started=time.time(), phase_since=time.time())
    )
    error: dict[str, Any] | None = None  # the trainer's `error` event
    end: str | None = None  # the status of its `end` event
    base_seq: int = 0  # events up to this seq were written before this attempt began
    stop_sent: float | None = None  # when SIGTERM went to the trainer (monotonic)

    def outcome(self, kind: str, message: str, **fields: Any) -> Outcome:
        """How this attempt ended, with its progress."""
        return Outcome(
            kind,
            message,
            self.progress.steps,
            self.proc.returncode,
            last_step=self.progress.last_step,
            **fields,
        )


@dataclass
class Duty:
    """Periodic work of the tick loop (telemetry rows, the stop poll, WAL housekeeping)."""

    every_s: float
    work: Callable[[], None]
    due: float = field(default_factory=time.monotonic)

    def run_if_due(self, now: float) -> None:
        if now - self.due >= self.every_s:
            self.due = now
            self.work()


def start_trainer(
    run_dir: Path, attempt: int, command: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The trainer of one attempt in its own session, its output appended to train.log after
    a line that marks where the attempt starts."""
    with open(run_dir / rundir.LOG, "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{MARKER.format(attempt)} {stamp} ---\n".encode())
        return subprocess.Popen(
            [*command, "--run-dir", str(run_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=run_dir,
        )


def attempt_log(run_dir: Path, attempt: int, lines: int = 400) -> list[str]:
    """The end of train.log, from this attempt's first line on."""
    tail = rundir.log_tail(run_dir, lines)
    starts = [i for i, line in enumerate(tail) if line.startswith(MARKER.format(attempt))]
    return tail[starts[-1] :] if starts else tail


def rank_beats(run_dir: Path, a: AttemptState) -> list[dict[str, Any]]:
    """This attempt's rank heartbeats (files left by an earlier attempt are not)."""
    return [
        b
        for b in rundir.read_rank_heartbeats(run_dir).values()
        if float(b.get("t") or 0) >= a.progress.attempt_started
    ]

# SPDX-License-Identifier: MIT
"""Run one evaluation process under the run's evaluation lock, watch it, file its results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.config import Project
from dinowm.errors import DinowmError
from dinowm.evaluate.plot import horizon_svg
from dinowm.rundir import LockHeld, RunLock
from dinowm.store import Store
from dinowm.supervise import diagnosis

TICK_S = 0.25
STARTUP_S = 60.0
Progress = Callable[[int, int, str], None]


class EvalWatch:
    """Supervises `python -m dinowm.evaluate.process` for one run: progress, stop, stall,
    results."""

    def __init__(
        self,
        project: Project,
        run_ref: str,
        request: dict[str, Any],
        *,
        on_progress: Progress | None = None,
        stall_s: float = 300.0,
    ) -> None:
        self.project, self.request = project, request
        self.on_progress, self.stall_s = on_progress, stall_s
        self.store = Store(project.runs_db)
        self.run = self.store.run(run_ref)
        self.run_id, self.run_dir = self.run["id"], Path(self.run["run_dir"])
        self.stop_reason: str | None = None
        self.records: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.status: str | None = None
        self.started = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_reason = self.stop_reason or f"{signal.Signals(signum).name} received"

    def run_eval(self) -> dict[str, Any]:
        """Evaluate; {"status", "records", "message"}. LockHeld-style DinowmError when another
        evaluation of this run is in progress."""
        folder = rundir.eval_path(self.run_dir, "")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock = RunLock.acquire(rundir.eval_path(self.run_dir, rundir.EVAL_LOCK), "evaluation")
        except LockHeld as exc:
            raise DinowmError(
                f"Run {self.run_id} is already being evaluated by "
                f"{exc.holder.describe()}; 'dinowm eval {self.run_id} --stop' "
                "stops that evaluation."
            ) from None
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._watch()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            lock.release()
            self.store.close()

    def _watch(self) -> dict[str, Any]:
        events = rundir.eval_path(self.run_dir, rundir.EVAL_EVENTS)
        offset = events.stat().st_size if events.exists() else 0
        with open(rundir.eval_path(self.run_dir, rundir.EVAL_LOG), "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dinowm.evaluate.process",
                    "--run-dir",
                    str(self.run_dir),
                    "--request",
                    json.dumps(self.request),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # a terminal's Ctrl-C reaches us; we forward it once
        last_event, forwarded, stalled = time.monotonic(), False, None
        while True:
            exited = proc.poll() is not None
            new, offset = rundir.read_jsonl(events, offset)
            if new:
                last_event = time.monotonic()
            for event in new:
                self._handle(event)
            if exited:
                break
            if self.stop_reason and not forwarded:
                proc.send_signal(signal.SIGTERM)
                forwarded = True
            # until its first event the process imports torch and loads data: a minute at least
            budget = self.stall_s if self.started else max(self.stall_s, STARTUP_S)
            if not stalled and time.monotonic() - last_event > budget:
                stalled = self._stalled(proc, time.monotonic() - last_event)
            time.sleep(TICK_S)
        return self._outcome(proc.returncode, stalled)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        self.started = True
        if kind == "progress" and self.on_progress:
            self.on_progress(event["done"], event["total"], event.get("what", ""))
        elif kind == "start" and self.on_progress:
            self.on_progress(0, event["total"], "loading")
        elif kind == "result":
            self._file(event["record"])
        elif kind == "error":
            self.error = event
        elif kind == "end":
            self.status = event["status"]

    def _file(self, record: dict[str, Any]) -> None:
        """A checkpoint's result: its horizon plot beside its pictures, its row in runs.db (the
        line in evaluations.jsonl is already written by the evaluation process)."""
        svg = horizon_svg(
            record.get("curves") or {}, f"{self.run_id} {record['checkpoint']}: open-loop error"
        )
        target = self.run_dir / record["pictures"]["horizon_plot"]
        if svg:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(svg)
            tmp.replace(target)
        self.store.add_evaluation(record)
        self.records.append(record)

    def _stalled(self, proc: subprocess.Popen, silent_s: float) -> str:
        """No progress for stall_s: diagnose (stacks, /proc), then kill the process."""
        diag = diagnosis.collect(
            self.run_dir, proc.pid, stacks_path=rundir.eval_path(self.run_dir, rundir.EVAL_STACKS)
        )
        line = f"evaluation made no progress for {silent_s:.0f} s: {diag['summary']}; stopped it"
        self.store.add_incident(self.run_id, "eval_stalled", line, diag)
        # nothing to save: each finished checkpoint's record is already written
        proc.kill()
        proc.wait()
        return line

    def _outcome(self, code: int, stalled: str | None) -> dict[str, Any]:
        if stalled:
            status, message = "failed", stalled
        elif self.status:
            status = self.status
            message = f"evaluation {status}: {len(self.records)} checkpoint(s) evaluated"
            if self.stop_reason and status == "stopped":
                message += f" ({self.stop_reason})"
        else:
            status = "failed"
            message = (self.error or {}).get("message") or (
                f"the evaluation process exited with code {code}; see "
                f"{rundir.eval_path(self.run_dir, rundir.EVAL_LOG)}: "
                + " | ".join(rundir.last_lines(rundir.eval_path(self.run_dir, rundir.EVAL_LOG), 3))
            )
            if not (
                self.error
                and self.error.get("kind") in ("ConfigError", "DataError", "NotFoundError")
            ):
                self.store.add_incident(
                    self.run_id,
                    "eval_failed",
                    message,
                    {
                        k: v
                        for k, v in (self.error or {}).items()
                        if k in ("kind", "traceback", "exit_code")
                    },
                )
        return {
            "status": status,
            "records": self.records,
            "message": message,
            "exit_code": 0
            if status in ("completed", "stopped")
            else int((self.error or {}).get("exit_code") or 1),
            "run_id": self.run_id,
        }


def stop(run_dir: Path) -> int | None:
    """SIGTERM to the process supervising the run's evaluation; its pid, None when none runs."""
    holder = rundir.holder(rundir.eval_path(run_dir, rundir.EVAL_LOCK))
    if holder is None or holder.pid is None:
        return None
    try:
        os.kill(holder.pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    return holder.pid


def progress(run_dir: Path) -> dict[str, Any] | None:
    """The running evaluation's holder and last progress event, None when none runs (TUI)."""
    holder = rundir.holder(rundir.eval_path(run_dir, rundir.EVAL_LOCK))
    if holder is None:
        return None
    lines = rundir.last_lines(rundir.eval_path(run_dir, rundir.EVAL_EVENTS), 20)
    last = {}
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") in ("progress", "start"):
            last = event
            break
    return {
        "pid": holder.pid,
        "since": holder.since,
        "done": last.get("done", 0),
        "total": last.get("total"),
        "what": last.get("what", "starting"),
    }


def start_detached(project: Project, run_id: str, args: list[str]) -> subprocess.Popen:
    """`dinowm eval RUN ARGS` in its own session, output to the run's eval.log (the TUI)."""
    store = Store(project.runs_db)
    try:
        run_dir = Path(store.run(run_id)["run_dir"])
    finally:
        store.close()
    folder = rundir.eval_path(run_dir, "")
    folder.mkdir(parents=True, exist_ok=True)
    with open(rundir.eval_path(run_dir, rundir.EVAL_LOG), "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dinowm",
                "--config",
                str(project.config_path),
                "eval",
                run_id,
                "--quiet",
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=project.root,
        )

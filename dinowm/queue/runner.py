# SPDX-License-Identifier: MIT
"""The queue supervisor: one per project (it holds outputs/queue.lock for its whole life); it
starts the queued entries one after another, each as a normal detached run supervisor, and
waits for each run to end.

Starting an entry is recorded before its run exists: runs.db claims it (queued → running with
the run id it will get, in one BEGIN IMMEDIATE transaction), then the journal's start line is
written, then the run is created under that id and its supervisor spawned. A queue supervisor
killed at any moment and started again finds the entry running with its run id and carries on
from there (creates the run if it does not exist yet, spawns it if it never ran, resumes it if
its supervisor died), so no entry ever gets a second run. A run whose supervisor died, or that
was stopped without a user's `dinowm stop`, is resumed (at most MAX_RESUMES times) before the
next entry starts.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.alerts.settings import for_project as alert_settings
from dinowm.backends import reconcile
from dinowm.config import Project, load_project
from dinowm.errors import DinowmError, NotFoundError
from dinowm.faults import fault
from dinowm.queue import hooks, journal
from dinowm.queue.entries import resolved_of
from dinowm.queue.gate import Gate
from dinowm.rundir import Holder, LockHeld, RunLock
from dinowm.runs import create_run, prepare_resume
from dinowm.store import Store
from dinowm.store.reindex import rebuild_run
from dinowm.supervise.supervisor import spawn_detached

MAX_RESUMES = 3
POLL_S = 0.5
ROLE = "queue"


def supervisor(project: Project) -> Holder | None:
    """The project's live queue supervisor, or None."""
    return rundir.holder(project.queue_lock)


def hold(project: Project) -> RunLock:
    """The queue lock, or a one-line refusal naming the live queue supervisor."""
    project.outputs.mkdir(parents=True, exist_ok=True)
    try:
        return RunLock.acquire(project.queue_lock, role=ROLE)
    except LockHeld as exc:
        raise LockHeld(
            f"The queue of {project.root} is already run by {exc.holder.describe()}; "
            f"'dinowm queue' shows it, 'dinowm queue pause' holds new entries.",
            exc.holder,
        ) from None


class QueueRunner:
    """Runs entries until the queue is empty or paused (with no run of its own left)."""

    def __init__(
        self,
        project: Project,
        lock: RunLock,
        say: Callable[[str], None] = print,
        poll_s: float = POLL_S,
        gate: Gate | None = None,
    ):
        self.project = project
        self.lock = lock
        self.say = say
        self.poll_s = poll_s
        self.gate = gate or Gate()
        self.stopping = False
        self.ended_any = False
        self._journaled: set[int] = set()
        self._spawns: dict[int, int] = {}  # spawns of a run that never got going, by entry
        self._last_word: str | None = None

    def run(self) -> str:
        """Step until empty, paused or a signal; returns which. Calls hooks.on_empty when the
        queue ran empty after this supervisor ended an entry."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        why = "stopped"
        try:
            while not self.stopping:
                why = self.step()
                if why in ("empty", "paused"):
                    break
                time.sleep(self.poll_s)
            self._word(None if why == "stopped" else why)
        finally:
            self.gate.close()
            self.lock.release()
        if why == "empty" and self.ended_any:
            hooks.on_empty(self.project)
        return why

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True  # the current run goes on under its own supervisor

    def step(self) -> str:
        """One look: watch the current entry's run, or start the next entry when allowed."""
        with Store(self.project.runs_db) as store:
            current = store.queue_current()
            if current is not None:
                return self._watch(store, current)
            if store.queue_paused():
                return "paused"
            entry = store.queue_next()
            if entry is None:
                return "empty"
            cfg = resolved_of(entry).config
            reason = self.gate.why_not(store, cfg)
            if reason:
                self._word(f"entry {entry['id']} waits: {reason}", store)
                return "waiting"
            run_id = _new_run_id(self.project)
            if not store.queue_claim(entry["id"], run_id):
                return "waiting"  # removed or moved on meanwhile: look again
            fault("queue_claimed")
            return self._watch(store, store.queue_entry(entry["id"]))

    def _watch(self, store: Store, entry: dict[str, Any]) -> str:
        """Bring the entry's run to life if needed, and end the entry when its run ended."""
        if entry["id"] not in self._journaled:
            if not journal.started(self.project, entry["id"]):
                journal.append(self.project, "start", id=entry["id"], run_id=entry["run_id"])
                fault("queue_journaled")
            self._journaled.add(entry["id"])
        run = self._ensure_run(store, entry)
        run_dir = Path(run["run_dir"])
        if rundir.holder(rundir.supervisor_lock(run_dir)) is not None:
            self._word(f"entry {entry['id']} runs as {run['id']}", store)
            return "running"
        run = store.run(run["id"])  # read after the probe: a supervisor records, then unlocks
        status = run["status"]
        if status == "created" and not run["attempts"]:  # created, never supervised
            self._spawns[entry["id"]] = self._spawns.get(entry["id"], 0) + 1
            if self._spawns[entry["id"]] > MAX_RESUMES + 1:
                log = Path(run["run_dir"]) / rundir.SUPERVISOR_LOG
                return self._end(
                    store,
                    entry,
                    "failed",
                    f"the supervisor of run {run['id']} did not start; see {log}",
                )
            return self._spawn(store, entry, run, None)
        if status in ("completed", "failed", "cancelled") or (
            status == "stopped" and run.get("stop_requested_at")
        ):
            return self._end(
                store, entry, "failed" if status == "cancelled" else status, run.get("exit_reason")
            )
        if entry["resumes"] >= MAX_RESUMES:
            return self._end(
                store,
                entry,
                "failed",
                f"run {run['id']} ended {status} {MAX_RESUMES + 1} times without completing",
            )
        reconcile(store)  # a supervisor that died leaves the run active: it becomes 'lost'
        try:
            row, lock = prepare_resume(store, self.project, run["id"], (), by="the queue")
        except LockHeld:
            return "running"  # someone resumed it meanwhile: its supervisor runs it
        except DinowmError as exc:
            return self._end(store, entry, "failed", str(exc))
        store.queue_resumed(entry["id"])
        journal.append(self.project, "resume", id=entry["id"], run_id=run["id"])
        self.say(f"entry {entry['id']}: run {run['id']} ended {status}; resuming it")
        return self._spawn(store, entry, row, lock)

    def _ensure_run(self, store: Store, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry's run: read, rebuilt from its folder, or created now under its id."""
        run_id = entry["run_id"]
        with contextlib.suppress(NotFoundError):
            return store.run(run_id)
        run_dir = self.project.outputs / run_id
        if (run_dir / rundir.SPEC).is_file():  # created, but runs.db lost its row
            rebuild_run(store, run_dir)
            return store.run(run_id)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # a folder a crash left empty
        row = create_run(
            self.project,
            resolved_of(entry),
            name=entry["name"],
            run_id=run_id,
            origin={"queue_entry": entry["id"], "sweep_id": entry["sweep_id"]},
        )
        fault("queue_created")
        return row

    def _spawn(
        self, store: Store, entry: dict[str, Any], run: dict[str, Any], lock: RunLock | None
    ) -> str:
        """The run's normal detached supervisor, with the run's lock handed over."""
        try:
            lock = lock or rundir.claim(run["run_dir"], run["id"])
        except LockHeld:
            return "running"
        pid = spawn_detached(self.project, run["id"], lock)
        fault("queue_spawned")
        self.say(
            f"entry {entry['id']}: run {run['id']} ({run['name']}) started, supervisor pid {pid}"
        )
        self._word(f"entry {entry['id']} runs as {run['id']}", store)
        return "running"

    def _end(self, store: Store, entry: dict[str, Any], state: str, reason: str | None) -> str:
        store.queue_finish(entry["id"], state, reason)
        journal.append(
            self.project, "end", id=entry["id"], run_id=entry["run_id"], state=state, reason=reason
        )
        self.ended_any = True
        self.say(
            f"entry {entry['id']}: run {entry['run_id']} {state}"
            + (f" ({reason})" if reason and state != "completed" else "")
        )
        return "ended"

    def _word(self, text: str | None, store: Store | None = None) -> None:
        """Say what the queue does now, once per change, and keep it for `dinowm queue`."""
        if text == self._last_word:
            return
        self._last_word = text
        if text:
            self.say(text)
        if store is not None:
            store.set_queue_status(text)
        else:
            with Store(self.project.runs_db) as own:
                own.set_queue_status(text)


def _new_run_id(project: Project) -> str:
    """A run id whose folder does not exist yet."""
    from dinowm.runs import new_run_id

    while True:
        run_id = new_run_id()
        if not (project.outputs / run_id).exists():
            return run_id


def run_queue(
    project: Project,
    say: Callable[[str], None] = print,
    lock: RunLock | None = None,
    poll_s: float = POLL_S,
) -> str:
    """Run the queue in this process until it is empty or paused; returns which."""
    return QueueRunner(project, lock or hold(project), say, poll_s).run()


def start_detached(project: Project) -> int:
    """A queue supervisor in its own session (it outlives the terminal); returns its pid. The
    queue lock is taken here and handed to it, so a second start is refused in one line."""
    lock = hold(project)
    fd = lock.inheritable_fd()
    argv = [
        sys.executable,
        "-m",
        "dinowm.queue.runner",
        "--config",
        str(project.config_path),
        "--lock-fd",
        str(fd),
    ]
    try:
        with open(project.queue_log, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=project.root,
                pass_fds=(fd,),
            )
        lock.record(proc.pid, ROLE)
    finally:
        lock.release()
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    """`python -m dinowm.queue.runner --config PATH [--lock-fd N]`: a detached queue supervisor."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dinowm.queue.runner")
    parser.add_argument("--config", required=True)
    parser.add_argument("--lock-fd", type=int, default=None)
    args = parser.parse_args(argv)
    project = load_project(args.config)
    alert_settings(project)  # refused at start, as the command refused it, not at the end

    def say(text: str) -> None:
        print(time.strftime("%H:%M:%S"), text, flush=True)

    try:
        lock = (
            RunLock.adopt(project.queue_lock, args.lock_fd, ROLE)
            if args.lock_fd is not None
            else hold(project)
        )
        why = run_queue(project, say, lock)
    except DinowmError as exc:
        say(f"error: {exc}")
        return 1
    say(f"queue supervisor ends: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: MIT
"""Runs on this machine: a supervisor process here, its folder lock, 'lost' once it is gone."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.backends.launch import Launch, NewRun, Say
from dinowm.config import Project
from dinowm.errors import NotFoundError
from dinowm.rundir import ACTIVE
from dinowm.runs import new_run, prepare_resume
from dinowm.store import Store
from dinowm.supervise.procinfo import ProcessRef

STARTING_S = 60.0  # a run 'created' this recently may still be starting its supervisor


def supervisor_alive(run: Mapping[str, Any]) -> bool:
    """True when the run has a live supervisor here: its folder lock is held, or the recorded
    supervisor process (pid and start time) still runs."""
    if run.get("host") not in (None, socket.gethostname()):
        return False
    if run.get("run_dir") and rundir.holder(rundir.supervisor_lock(run["run_dir"])):
        return True
    if not run.get("supervisor_pid"):
        return False
    return ProcessRef(run["supervisor_pid"], run.get("supervisor_start") or -1).alive()


class LocalBackend:
    """A run supervised on this machine (the default: every run no other backend claims)."""

    name = "local"
    where = "this machine"

    def __init__(self, claimed: Callable[[Mapping[str, Any]], bool]):
        self._claimed = claimed  # whether another backend owns a run

    def owns(self, run: Mapping[str, Any]) -> bool:
        """Every run that no other backend claims."""
        return not self._claimed(run)

    def describe(self, run: Mapping[str, Any]) -> str:
        """'a run of this machine'."""
        return "a run of this machine"

    def launch(self, project: Project, new: NewRun, how: Launch) -> dict[str, Any]:
        """Check and write the run, then hand its lock to a supervisor here."""
        row, lock = new_run(
            project,
            new.preset,
            new.overrides,
            gpus=new.gpus,
            name=new.name,
            note=new.note,
            argv=new.argv,
            warn=how.warn,
        )
        how.start(project, row["id"], lock)
        return row

    def resume(
        self,
        project: Project,
        run_id: str,
        overrides: tuple[str, ...] | list[str],
        how: Launch,
        forget: Mapping[str, Any],
    ) -> dict[str, Any]:
        """prepare_resume (the run's lock, resumable overrides), then a supervisor here."""
        with Store(project.runs_db) as store:
            row, lock = prepare_resume(store, project, run_id, overrides, how.by, fields=forget)
        how.start(project, row["id"], lock)
        return row

    def stop(self, store: Store, run: dict[str, Any], say: Say) -> dict[str, Any]:
        """Ask the run's supervisor to stop gracefully (checkpoint, then 'stopped')."""
        if not store.update_run_if(
            run["id"], ACTIVE, stop_requested_at=time.time(), status="stopping"
        ):
            run = store.run(run["id"])
            raise NotFoundError(
                f"Run {run['id']} is not running (status {run['status']}); nothing to stop."
            )
        if supervisor_alive(run) and run.get("supervisor_pid"):
            ProcessRef(run["supervisor_pid"], run.get("supervisor_start") or -1).send(
                signal.SIGTERM
            )  # it also polls the request; this only makes it prompt
        return store.run(run["id"])

    def reconcile(self, store: Store) -> list[str]:
        """Active runs of this machine whose supervisor is gone become 'lost', with their last
        log lines; returns their ids.

        The status change is a compare-and-set on the status read here, so a resume that took
        the run in the meantime is never marked lost.
        """
        lost = []
        for run in store.runs_with_status(ACTIVE):
            if not self.owns(run) or not self.occupies_here(run) or supervisor_alive(run):
                continue
            if run["status"] == "created" and time.time() - run["created_at"] < STARTING_S:
                continue
            tail = rundir.log_tail(run["run_dir"], 20) if run["run_dir"] else []
            trainer = ProcessRef(run["pid"], run.get("pid_start") or -1) if run.get("pid") else None
            orphan = trainer is not None and trainer.alive()
            reason = f"supervisor (pid {run.get('supervisor_pid')}) is gone" + (
                f"; trainer pid {run['pid']} still runs" if orphan else ""
            )
            if not store.update_run_if(
                run["id"],
                [run["status"]],
                status="lost",
                exit_reason=reason,
                ended_at=time.time(),
                phase=None,
            ):
                continue  # a resume or the supervisor changed it since it was read
            store.add_incident(
                run["id"],
                "lost",
                reason,
                {"log_tail": tail, "orphan_trainer": orphan},
                attempt=run.get("attempts"),
                epoch=run.get("epoch"),
            )
            lost.append(run["id"])
        return lost

    def log_path(self, run: Mapping[str, Any]) -> Path:
        """The trainer's train.log in the run folder."""
        return Path(run["run_dir"]) / rundir.LOG

    def occupies_here(self, run: Mapping[str, Any]) -> bool:
        """True for a run of this machine (a run recorded on another host is that host's)."""
        return run.get("host") in (None, socket.gethostname())

    def placement(self, run: Mapping[str, Any]) -> str:
        """Nothing to add: a local run is where the table is."""
        return ""

    def release(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """No column of a local run stops holding when it resumes elsewhere."""
        return {}

    def rebuilt(
        self, store: Store, run: dict[str, Any], events: list[dict[str, Any]], events_end: int
    ) -> None:
        """A rebuilt run the record leaves active ends as its last `end` event says, or
        'lost' (no supervisor survives a reindex of its record)."""
        if run["status"] not in ACTIVE:
            return
        ended = [e for e in events if e["type"] == "end"]
        status = ended[-1]["status"] if ended else "lost"
        store.update_run(
            run["id"],
            status=status,
            exit_reason=run.get("exit_reason") or "rebuilt by dinowm reindex",
        )

# SPDX-License-Identifier: MIT
"""The login node's view of cluster runs: the shared run folder, read on, and Slurm's word.

Every command that reads runs.db (runs, show, tail, export-log, the TUI) first brings the
cluster runs up to date: the trainer's events.jsonl, the job's record.job.jsonl and its GPU
samples (telemetry.job.jsonl) are read from where the last read stopped (offsets in runs.db),
then Slurm says what the job is doing.
A job that ended without its supervisor writing a final status (cancelled from outside, timed
out, its node failed) gets the status Slurm's state implies, so no run stays "running".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.cluster import slurm
from dinowm.events import read_events
from dinowm.rundir import ACTIVE
from dinowm.store import Store
from dinowm.store.reindex import apply_record

# A final Slurm state → the run's status when its supervisor could not write one.
ENDED = {"CANCELLED": "cancelled", "COMPLETED": "lost"}
# A process that syncs often (the TUI's poll, `tail -f`) asks Slurm at most this often; the
# run folders are read every time. Schedulers' admins ask users not to poll squeue in a loop.
ASK_EVERY_S = 5.0
_asked: dict[str, float] = {}


def read_on(store: Store, run: dict[str, Any]) -> None:
    """Ingest what the run folder gained since the last read (events, then the job's record)."""
    run_dir = Path(run["run_dir"])
    events, events_end = read_events(run_dir / rundir.EVENTS, run.get("events_offset") or 0)
    if events:
        store.ingest(run["id"], events)
    items, record_end = rundir.read_jsonl(
        run_dir / rundir.JOB_RECORD, run.get("job_record_offset") or 0
    )
    if items:
        with store.journal_paused():  # already durable in record.job.jsonl
            apply_record(store, run["id"], items)
    samples, telemetry_end = rundir.read_jsonl(
        run_dir / rundir.JOB_TELEMETRY, run.get("telemetry_offset") or 0
    )
    if samples:
        store.add_telemetry([{**s, "run_id": run["id"]} for s in samples])
    if events or items:
        store.sync_checkpoints(run["id"], rundir.committed_checkpoints(run_dir))
    if (
        events_end != (run.get("events_offset") or 0)
        or record_end != (run.get("job_record_offset") or 0)
        or telemetry_end != (run.get("telemetry_offset") or 0)
    ):
        store.update_run(
            run["id"],
            events_offset=events_end,
            job_record_offset=record_end,
            telemetry_offset=telemetry_end,
        )


def settle(store: Store, run: dict[str, Any], state: slurm.JobState | None) -> None:
    """Record Slurm's state of the run's job, and a status where only Slurm knows it."""
    if state is None:
        _forgotten(store, run)
        return
    _record_state(store, run, state)
    if _requeued(store, run, state) or state.live:
        return
    if state.state == "CANCELLED" and run.get("stop_requested_at"):
        _stopped(store, run)
        return
    _ended(store, run, state)


def _forgotten(store: Store, run: dict[str, Any]) -> None:
    """A job Slurm no longer knows (neither squeue nor sacct): its active run a minute after
    its last word is lost."""
    if run["status"] in ACTIVE and time.time() - (run.get("updated_at") or 0) > 60:
        store.update_run_if(
            run["id"],
            [run["status"]],
            status="lost",
            phase=None,
            exit_reason=f"Slurm no longer knows job {run['slurm_job_id']} (squeue, sacct)",
            ended_at=time.time(),
        )


def _record_state(store: Store, run: dict[str, Any], state: slurm.JobState) -> None:
    """The job's state, reason, nodes and restarts on the run's row; a new state is also an
    incident."""
    if state.state == run.get("slurm_state") and state.reason == (run.get("slurm_reason") or ""):
        return
    job = run["slurm_job_id"]
    if state.state != run.get("slurm_state"):
        store.add_incident(
            run["id"],
            "slurm",
            f"Slurm job {job}: {state.describe()}",
            {
                "job_id": job,
                "state": state.state,
                "reason": state.reason,
                "nodes": state.nodes,
                "restarts": state.restarts,
            },
            attempt=run.get("attempts"),
        )
    store.update_run(
        run["id"],
        slurm_state=state.state,
        slurm_reason=state.reason or None,
        slurm_nodes=state.nodes or run.get("slurm_nodes"),
        slurm_restarts=state.restarts,
    )


def _requeued(store: Store, run: dict[str, Any], state: slurm.JobState) -> bool:
    """A job pending again after its supervisor stopped or died: the run is pending too; True
    when it was requeued so."""
    status = run["status"]
    requeued = state.restarts > (run.get("slurm_restarts") or 0)
    if state.state != "PENDING" or not (
        status in ("stopped", "failed", "lost")
        or (status in ACTIVE and status != "pending" and requeued)
    ):
        return False
    # Slurm requeued the job (preemption, a node failure) after its supervisor stopped
    # or died; the next allocation resumes from the checkpoint
    store.update_run_if(
        run["id"],
        [status],
        status="pending",
        phase=None,
        ended_at=None,
        exit_reason=f"Slurm requeued job {run['slurm_job_id']}: {state.reason or 'pending'}",
    )
    return True


def _stopped(store: Store, run: dict[str, Any]) -> None:
    """A job `dinowm stop` cancelled: its run, if still active, is stopped."""
    status = run["status"]
    if status in ACTIVE:
        store.update_run_if(
            run["id"],
            [status],
            status="stopped",
            phase=None,
            exit_reason=f"stopped: Slurm job {run['slurm_job_id']} cancelled by dinowm stop",
            ended_at=time.time(),
        )


def _ended(store: Store, run: dict[str, Any], state: slurm.JobState) -> None:
    """A job that ended without its supervisor's final status (or was cancelled from outside
    after a stop): the status its Slurm state implies."""
    status = run["status"]
    cancelled_outside = state.state == "CANCELLED" and status == "stopped"
    if status in ACTIVE or cancelled_outside:
        new = ENDED.get(state.state, "failed")
        reason = f"Slurm job {run['slurm_job_id']} ended {state.state}"
        if new == "lost":
            reason += " but its supervisor recorded no final status; see slurm.out"
        elif new == "cancelled":
            reason += " (scancel from outside dinowm); 'dinowm resume RUN' continues it"
        store.update_run_if(
            run["id"], [status], status=new, phase=None, exit_reason=reason, ended_at=time.time()
        )


def sync(store: Store) -> list[str]:
    """Bring every followed cluster run up to date; returns their ids. Without Slurm's
    commands here (a copy of the project on a laptop) only the run folders are read."""
    runs = store.runs_on_slurm(slurm.LIVE)
    if not runs:
        return []
    states: dict[str, slurm.JobState] | None = None
    key = str(store.path)
    if not slurm.missing() and time.monotonic() - _asked.get(key, -ASK_EVERY_S) >= ASK_EVERY_S:
        _asked[key] = time.monotonic()
        try:  # before reading the folders: a job that ended has written all it will
            states = slurm.query([r["slurm_job_id"] for r in runs])
        except slurm.SlurmError:
            states = None
    for run in runs:
        read_on(store, run)
        if states is not None:
            settle(store, store.run(run["id"]), states.get(run["slurm_job_id"]))
    return [r["id"] for r in runs]

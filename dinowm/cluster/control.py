# SPDX-License-Identifier: MIT
"""Stopping a cluster run from the login node (the supervisor runs inside the Slurm job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dinowm import rundir
from dinowm.cluster import slurm
from dinowm.errors import NotFoundError
from dinowm.rundir import ACTIVE
from dinowm.store import Store


def stop(
    store: Store,
    run: dict[str, Any],
    say: Callable[[str], None] = print,
    wait_s: float | None = None,
) -> dict[str, Any]:
    """`dinowm stop` of a cluster run: a pending job is cancelled; a running one is asked to
    checkpoint (the stop request file, SIGTERM to the batch step through scancel) and
    cancelled if it has not ended within the checkpoint budget."""
    job = run["slurm_job_id"]
    slurm.require("stop")  # before anything is recorded: no run left 'stopping' for nothing
    if not store.update_run_if(run["id"], ACTIVE, stop_requested_at=time.time(), status="stopping"):
        raise NotFoundError(
            f"Run {run['id']} is not running (status {run['status']}); nothing to stop."
        )
    rundir.request_stop(run["run_dir"])
    state = slurm.query([job]).get(job)
    if state is None or not state.live:
        return store.run(run["id"])
    if state.state == "PENDING":
        slurm.cancel(job)
        say(f"Slurm job {job} was pending: cancelled")
        return store.run(run["id"])
    slurm.cancel(job, signal="TERM", batch_only=True)
    if wait_s is None:
        wait_s = (
            float(rundir.read_spec(run["run_dir"])["config"]["watchdog"]["checkpoint_s"]) + 30.0
        )
    say(
        f"Slurm job {job}: asked to checkpoint and stop; cancelling it after {wait_s:.0f} s "
        f"if it has not ended"
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        state = slurm.query([job]).get(job)
        if state is None or not state.live:
            return store.run(run["id"])
    slurm.cancel(job)
    say(f"Slurm job {job} did not end within {wait_s:.0f} s: cancelled")
    return store.run(run["id"])

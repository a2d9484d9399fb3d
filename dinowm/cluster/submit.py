# SPDX-License-Identifier: MIT
"""The login node's actions on cluster runs: submit, resubmit, stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.cluster import slurm
from dinowm.cluster.options import SlurmOptions, options
from dinowm.cluster.script import render
from dinowm.config import Project
from dinowm.errors import ConfigError
from dinowm.rundir import read_spec, write_spec
from dinowm.runs import create_run, prepare_resume, resolve_run, resumed_spec
from dinowm.store import Store

# The row's fields that name a run's current job; a resume clears them in the same write as
# its status (a follower reading in between never sees a new attempt under the old job).
JOB_FIELDS = ("slurm_job_id", "slurm_state", "slurm_reason", "slurm_nodes")


def _world_check(opts: SlurmOptions, batch: int, grad_accum: int, ranks_per_node: int) -> None:
    world = opts.nodes * ranks_per_node
    if batch % (world * grad_accum):
        raise ConfigError(
            f"training.batch_size={batch} does not split over {opts.nodes} "
            f"node{'s' * (opts.nodes != 1)} x {ranks_per_node} rank"
            f"{'s' * (ranks_per_node != 1)} x training.grad_accum={grad_accum}; "
            f"choose a batch that is a multiple of {world * grad_accum}."
        )


def _script(project: Project, row: dict[str, Any], opts: SlurmOptions, ranks: int) -> Path:
    run_dir = Path(row["run_dir"])
    path = run_dir / rundir.SLURM_SCRIPT
    path.write_text(
        render(row["id"], row["name"], run_dir, project.config_path, project.root, opts, ranks)
    )
    path.chmod(0o755)
    return path


def _submitted(store: Store, row: dict[str, Any], job: str, what: str) -> dict[str, Any]:
    store.update_run(
        row["id"],
        status="pending",
        slurm_job_id=job,
        slurm_state="PENDING",
        slurm_reason=None,
        slurm_nodes=None,
        slurm_restarts=0,
        stop_requested_at=None,
        ended_at=None,
        exit_reason=None,
    )
    store.add_incident(
        row["id"],
        "slurm",
        f"{what} as Slurm job {job}: PENDING",
        {"job_id": job, "state": "PENDING"},
        attempt=row.get("attempts"),
    )
    return store.run(row["id"])


def submit_new(
    project: Project,
    preset: str | None,
    overrides: tuple[str, ...] | list[str],
    flags: dict[str, Any],
    *,
    name: str | None = None,
    note: str | None = None,
    argv: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`dinowm run --slurm`: checks, the run, its batch script, sbatch. Nothing is created when
    Slurm is missing or a value is wrong."""
    from dinowm.trials import check_dataset_files

    opts = options(project.slurm, f"[slurm] of {project.config_path}", **flags)
    slurm.require()
    if opts.gpus_per_node:
        overrides = (*overrides, f"dist.nproc_per_node={opts.gpus_per_node}")
    resolved = resolve_run(project, preset, overrides)
    t = resolved.config.training
    _world_check(opts, t.batch_size, t.grad_accum, resolved.config.dist.nproc_per_node)
    check_dataset_files(resolved.config)
    row = create_run(project, resolved, name=name, note=note, argv=argv, warn=warn)
    spec = read_spec(row["run_dir"])
    write_spec(row["run_dir"], {**spec, "slurm": opts.to_dict()})
    script = _script(project, row, opts, resolved.config.dist.nproc_per_node)
    with Store(project.runs_db) as store:
        try:
            job = slurm.submit(script)
        except slurm.SlurmError as exc:
            store.update_run(
                row["id"],
                status="failed",
                ended_at=time.time(),
                exit_reason=f"sbatch refused the job: {exc}",
            )
            raise
        return _submitted(store, row, job, "submitted")


def refuse_live(run: Mapping[str, Any]) -> None:
    """LockHeld naming the run's job while Slurm says it still lives (pending or running)."""
    if not run.get("slurm_job_id"):
        return
    state = slurm.query([run["slurm_job_id"]]).get(run["slurm_job_id"])
    if state is not None and state.live:
        raise rundir.LockHeld(
            f"Run {run['id']} is Slurm job {state.job_id}, "
            f"{state.describe()}; 'dinowm stop {run['id']}' stops it.",
            rundir.Holder(None, state.nodes or None, job=state.job_id),
        )


def resubmit(
    store: Store,
    project: Project,
    ref: str,
    overrides: tuple[str, ...] | list[str],
    flags: dict[str, Any],
    by: str = "the user",
) -> dict[str, Any]:
    """`dinowm resume RUN` of a cluster run (or with --slurm): the usual resume checks, then a
    new job that continues from the latest checkpoint. A run whose job still lives is refused;
    one whose job could not be submitted keeps its last job."""
    slurm.require("resume on Slurm (--local trains it on this machine instead)")
    run = store.run(ref)
    refuse_live(run)
    # The options and the batch split of the resumed configuration are checked before the
    # resume writes anything (resumed_spec only reads).
    spec, cfg = resumed_spec(Path(run["run_dir"]), overrides, project)
    opts = options(
        {**project.slurm, **(spec.get("slurm") or {})}, f"config.json of {run['id']}", **flags
    )
    _world_check(opts, cfg.training.batch_size, cfg.training.grad_accum, cfg.dist.nproc_per_node)
    row, lock = prepare_resume(
        store, project, run["id"], overrides, by, fields=dict.fromkeys(JOB_FIELDS)
    )
    try:
        write_spec(row["run_dir"], {**read_spec(row["run_dir"]), "slurm": opts.to_dict()})
        rundir.clear_stop_request(row["run_dir"])
        script = _script(project, row, opts, cfg.dist.nproc_per_node)
        job = slurm.submit(script)
        return _submitted(store, row, job, "resubmitted")
    except BaseException:
        store.update_run_if(
            row["id"],
            ["created"],
            status="stopped",
            exit_reason="the resume's Slurm job was not submitted",
            **{k: run.get(k) for k in JOB_FIELDS},
        )
        raise
    finally:
        lock.release()

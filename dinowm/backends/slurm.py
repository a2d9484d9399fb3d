# SPDX-License-Identifier: MIT
"""Runs on Slurm: the login node's side of dinowm.cluster (submit, resubmit, stop through
scancel, the run folders read on), as the faces ask any backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.backends.launch import Launch, NewRun, Say
from dinowm.cluster import control, follow, slurm
from dinowm.cluster.submit import JOB_FIELDS, refuse_live, resubmit, submit_new
from dinowm.config import Project
from dinowm.errors import ConfigError, NotFoundError
from dinowm.rundir import ACTIVE
from dinowm.store import Store


def placement(run: Mapping[str, Any]) -> str:
    """'job 12 RUNNING on node[1-2]', 'job 12 PENDING (Priority)', or '' without a job."""
    job = run.get("slurm_job_id")
    if not job:
        return ""
    state = run.get("slurm_state") or "?"
    text = f"job {job} {state}"
    if run.get("slurm_reason") and run["slurm_reason"] != "None" and state != "RUNNING":
        text += f" ({run['slurm_reason']})"
    if run.get("slurm_nodes") and state in ("RUNNING", "COMPLETING"):
        text += f" on {run['slurm_nodes']}"
    if run.get("slurm_restarts"):
        text += f", requeued {run['slurm_restarts']}x"
    return text


def submitted(row: Mapping[str, Any]) -> str:
    """What a face says once a job is submitted: the job and the commands that follow it."""
    return (
        f"run {row['id']} ({row['name']}) submitted as Slurm job {row['slurm_job_id']}\n"
        f"  follow:  dinowm tail {row['id']} -f\n  state:   dinowm runs   (job state, "
        f"nodes)\n  stop:    dinowm stop {row['id']}\n  folder:  {row['run_dir']}"
    )


class SlurmBackend:
    """A run whose supervisor runs inside a Slurm job; the login node follows its folder."""

    name = "slurm"
    where = "Slurm"

    def owns(self, run: Mapping[str, Any]) -> bool:
        """A run submitted to Slurm (it has a job) and not resumed elsewhere since."""
        return bool(run.get("slurm_job_id"))

    def describe(self, run: Mapping[str, Any]) -> str:
        """'a Slurm job (last job 12)'."""
        return f"a Slurm job (last job {run.get('slurm_job_id')})"

    def launch(self, project: Project, new: NewRun, how: Launch) -> dict[str, Any]:
        """Check and write the run, its batch script, sbatch (nothing is written when Slurm
        is missing or an option is wrong)."""
        if new.gpus is not None:
            raise ConfigError(
                "--gpus is for this machine's GPUs; on Slurm give "
                "--gpus-per-node N (and --nodes M)."
            )
        row = submit_new(
            project,
            new.preset,
            new.overrides,
            dict(how.flags),
            name=new.name,
            note=new.note,
            argv=new.argv,
            warn=how.warn,
        )
        how.say(submitted(row))
        return row

    def resume(
        self,
        project: Project,
        run_id: str,
        overrides: tuple[str, ...] | list[str],
        how: Launch,
        forget: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A new job that continues from the latest checkpoint (refused while one lives)."""
        with Store(project.runs_db) as store:
            row = resubmit(store, project, run_id, overrides, dict(how.flags), by=how.by)
        how.say(submitted(row))
        return row

    def stop(self, store: Store, run: dict[str, Any], say: Say) -> dict[str, Any]:
        """Through Slurm: a pending job is cancelled, a running one checkpoints first."""
        if run["status"] not in ACTIVE:
            raise NotFoundError(
                f"Run {run['id']} is not running (status {run['status']}); nothing to stop."
            )
        return control.stop(store, run, say=say)

    def reconcile(self, store: Store) -> list[str]:
        """Cluster runs read on from their folders, their status as Slurm says; their ids."""
        return follow.sync(store)

    def log_path(self, run: Mapping[str, Any]) -> Path:
        """The trainer's train.log in the shared run folder."""
        return Path(run["run_dir"]) / rundir.LOG

    def occupies_here(self, run: Mapping[str, Any]) -> bool:
        """Never: the job trains on the cluster's nodes, not on the login node."""
        return False

    def release(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The job's fields: its job no longer speaks for a run resumed elsewhere. Refused
        while Slurm says the job lives (never two trainers on one folder); without Slurm's
        commands here (a copy of the project) the user's --local is taken at its word."""
        if not slurm.missing():
            refuse_live(run)
        return dict.fromkeys(JOB_FIELDS)

    def placement(self, run: Mapping[str, Any]) -> str:
        """The job, its state and nodes (see placement())."""
        return placement(run)

    def rebuilt(
        self, store: Store, run: dict[str, Any], events: list[dict[str, Any]], events_end: int
    ) -> None:
        """The login node reads the folder on from here; Slurm settles an active one."""
        job_record = Path(run["run_dir"]) / rundir.JOB_RECORD
        store.update_run(
            run["id"],
            events_offset=events_end,
            job_record_offset=(job_record.stat().st_size if job_record.exists() else 0),
        )

# SPDX-License-Identifier: MIT
"""`python -m dinowm.cluster.job --config PATH --run ID`: a run's supervisor inside its Slurm job.

The batch script execs this on the allocation's first node. It supervises exactly as on a
workstation (watchdog, stall diagnosis, resumes after crashes, the trainer's own lock), with
three differences:

- its index is a private runs.db on the node's local disk (SQLite never lives on a network
  filesystem), seeded from the run folder; everything it records goes to the run folder's
  record.jsonl for the job (record.job.jsonl), which the login node reads;
- the trainer starts through `srun`, one torchrun per node, rendezvous (c10d) on the first;
- SIGUSR1, which Slurm sends `slurm.signal_s` before the time limit, checkpoints and
  requeues the job, which then continues from the checkpoint. Each allocation is an attempt.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.cluster import nodes, slurm
from dinowm.cluster.options import SlurmOptions, from_dict
from dinowm.config import Project, load_project
from dinowm.rundir import LockHeld
from dinowm.schema import RunConfig
from dinowm.store import Store
from dinowm.store.reindex import rebuild_run
from dinowm.supervise.attempt import attempt_log
from dinowm.supervise.ending import exit_outcome
from dinowm.supervise.supervisor import AttemptState, Supervisor
from dinowm.supervise.watchdog import Outcome

STEP_PREFIX = "dinowm-trainer"
TELEMETRY_EVERY_S = 5.0  # GPU samples the login node sees (the job's own index keeps all)
# train.log lines an attempt's end reads on several nodes: every node's report and traceback
LOG_LINES = 2000


class JobSupervisor(Supervisor):
    """The supervisor of a run inside its Slurm allocation."""

    def __init__(self, project: Project, run_id: str, opts: SlurmOptions, job: str, nodelist: str):
        super().__init__(
            project, run_id, journal=rundir.JOB_RECORD, telemetry_every_s=TELEMETRY_EVERY_S
        )
        self.opts = opts
        self.job = job
        self.nodelist = nodelist
        self.time_limit = False  # SIGUSR1 came: checkpoint, then requeue
        # the allocation's nodes in order, each with its NodeAddr (the first node first)
        self.addrs = slurm.node_addrs(slurm.hostnames(nodelist)) if opts.nodes > 1 else {}
        self.endpoint: nodes.Endpoint | None = None  # this attempt's rendezvous

    def _install_signals(self) -> None:
        super()._install_signals()
        signal.signal(signal.SIGUSR1, self._on_time_limit)

    def _on_time_limit(self, signum: int, frame: Any) -> None:
        self.time_limit = True
        if self.stop_reason is None:
            self.stop_reason = f"Slurm's time limit is {self.opts.signal_s} s away (SIGUSR1)"

    def _recorded(self, status: str, reason: str) -> tuple[str, str]:
        """A stop that came from Slurm is not final: at the time limit the job requeues itself
        (pending); after Slurm's own SIGTERM (scancel, preemption) Slurm's final state decides,
        which the login node reads (stopping until then)."""
        if status != "stopped" or rundir.stop_requested(self.run_dir):
            return status, reason
        row = self.store.run(self.run_id)
        where = f"checkpointed at epoch {row['epoch']}"
        if self.time_limit and self.opts.requeue and row["epoch"] < row["epochs_target"]:
            return "pending", f"Slurm time limit near: {where}, job {self.job} requeued"
        if self.time_limit and not self.opts.requeue:
            return status, (
                f"Slurm time limit near: {where}; slurm.requeue is off, 'dinowm "
                f"resume {self.run_id}' continues it"
            )
        if self.time_limit:
            return status, f"Slurm time limit near: {where}, the last of its epochs"
        why = (
            reason
            if "Slurm" in reason
            else f"{reason} from Slurm (job cancelled, preempted or past its time limit)"
        )
        return "stopping", f"{why}; latest checkpoint at epoch {row['epoch']}"

    def _ranks(self, cfg: RunConfig) -> int:
        return self.opts.nodes * cfg.dist.nproc_per_node

    def _trainer_env(self) -> dict[str, str]:
        """The trainer appends its log lines to train.log itself: srun forwards a task's
        output through slurmstepd, and a node failure loses the lines still on their way
        (an epoch's 'done' line after its event and checkpoint were written)."""
        return {rundir.LOG_FILE_ENV: str(self.run_dir / rundir.LOG)}

    def _command(self, cfg: RunConfig, attempt: int) -> list[str]:
        """srun: one task per node, each a torchrun with this node's ranks (or the trainer
        itself for a run of one rank)."""
        opts = self.opts
        srun = [
            "srun",
            f"--nodes={opts.nodes}",
            "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            f"--job-name={STEP_PREFIX}-{attempt}",
        ]
        if opts.gpus_per_node:
            srun.append(f"--gpus-per-node={opts.gpus_per_node}")
        if opts.cpus_per_task:
            srun.append(f"--cpus-per-task={opts.cpus_per_task}")
        if self._ranks(cfg) == 1:
            return [*srun, sys.executable, "-m", "dinowm.train"]
        ranks = [f"--nproc-per-node={cfg.dist.nproc_per_node}", "--max-restarts=0"]
        if opts.nodes == 1:  # a free port of its own: other jobs may share the node
            torchrun = [sys.executable, "-m", "torch.distributed.run", *ranks, "--standalone"]
            return [*srun, *torchrun, "-m", "dinowm.train"]
        # several nodes: each attempt of each job its own rendezvous on the first node, at the
        # address Slurm reaches it at; each node's torchrun started by dinowm.cluster.nodes with
        # its own address, and its lines labelled with its task
        first = next(iter(self.addrs))
        port = opts.rdzv_port + (int(self.job) + attempt) % 1000
        self.endpoint = nodes.Endpoint(first, self.addrs[first], port)
        where = ", ".join(f"{name} at {addr}" for name, addr in self.addrs.items())
        print(f"attempt {attempt}: nodes {where}; rendezvous at {self.endpoint}", flush=True)
        launch = [sys.executable, "-m", "dinowm.cluster.nodes", nodes.encode(self.addrs), "--"]
        return [
            *srun,
            "--label",
            *launch,
            *ranks,
            f"--nnodes={opts.nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={self.endpoint}",
            f"--rdzv-id={self.job}-{attempt}",
            "-m",
            "dinowm.train",
        ]

    def _trainer_steps(self) -> dict[str, str]:
        return {
            name: step
            for name, step in slurm.steps(self.job).items()
            if name.startswith(STEP_PREFIX)
        }

    def _signal_trainer(self, signum: int) -> None:
        """A graceful signal goes to the trainer's step through Slurm: srun itself takes
        SIGTERM as 'terminate the step now'."""
        if self.proc is None or self.proc.poll() is not None:
            return
        steps = self._trainer_steps()
        for step in steps.values():
            slurm.cancel_step(self.job, step, signal.Signals(signum).name.removeprefix("SIG"))
        if not steps:  # srun has not registered its step yet
            super()._signal_trainer(signum)

    def _kill(self, proc: subprocess.Popen, grace_s: float, reaped: bool = False) -> dict[str, Any]:
        """SIGTERM to srun makes it end its step; what still runs after the grace (a rank
        stuck in the kernel, a hung node) is killed by Slurm itself, step by step."""
        result = super()._kill(proc, grace_s, reaped)
        deadline = time.monotonic() + max(grace_s, 5.0)
        while True:
            left = self._trainer_steps()
            if not left:
                break
            if time.monotonic() > deadline:
                result["slurm_steps_left"] = sorted(left)
                break
            for step in left.values():
                slurm.cancel_step(self.job, step)
            result.setdefault("slurm_steps_killed", sorted(left))
            time.sleep(0.5)
        return result

    def _exited(self, a: AttemptState, mirror: Any) -> Outcome | None:
        """A trainer that ended without finishing while Slurm ends this allocation (a node
        failed, the job was preempted or cancelled): no resume here, the next allocation or
        Slurm's final state decides."""
        outcome = self._nodes_exited(a, mirror) if self.addrs else super()._exited(a, mirror)
        if (
            outcome is None
            or outcome.kind in ("completed", "stopped")
            or self.stop_reason is not None
        ):
            return outcome
        try:
            state = slurm.query([self.job]).get(self.job)
        except slurm.SlurmError:
            return outcome
        if state is not None and state.state != "RUNNING":
            self.stop_reason = f"Slurm is ending this allocation ({state.describe()})"
        return outcome

    def _nodes_exited(self, a: AttemptState, mirror: Any) -> Outcome | None:
        """The end of an attempt on several nodes: each node's torchrun report read from its
        own lines, the rank that failed first named with its node; a rendezvous that failed
        before any step is its own outcome, in one line."""
        rc = a.proc.poll()
        if not rc:
            return super()._exited(a, mirror)
        self._ingest(a, mirror, time.time())
        self._kill(a.proc, grace_s=1.0, reaped=True)  # leftover workers
        out = nodes.split(attempt_log(self.run_dir, a.number, LOG_LINES), list(self.addrs))
        failed = None
        if a.progress.last_step is None and self.endpoint is not None and a.stop_sent is None:
            failed = nodes.rendezvous_failure(out, self.endpoint)
        if failed is not None:
            details = {
                **failed,
                "endpoint": str(self.endpoint),
                "exit_code": rc,
                "srun": out.srun[-10:],
                "log_tail": rundir.log_tail(self.run_dir, 30),
            }
            self.store.add_incident(
                self.run_id, "rendezvous", failed["summary"], details, attempt=a.number
            )
            return a.outcome("rendezvous", failed["summary"])
        rank, node = nodes.first_failure(out) or (None, None)
        return exit_outcome(self.store, self.run_id, self.run_dir, a, rc, rank, node)

    def _trainer_pid(self, a: AttemptState) -> int:
        """The trainer runs under slurmstepd, not under srun: its lock file names it."""
        holder = rundir.holder(rundir.trainer_lock(self.run_dir))
        if holder is not None and holder.pid and holder.host == socket.gethostname():
            return holder.pid
        return a.proc.pid


def private_index(job: str) -> Path:
    """A runs.db on this node's local disk, for this allocation only."""
    base = os.environ.get("SLURM_TMPDIR") or os.environ.get("TMPDIR") or tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix=f"dinowm-job{job}-", dir=base)) / "runs.db"


def run_job(project: Project, run_id: str) -> int:
    """Supervise RUN in this allocation; requeue at the time limit; returns the exit code."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        print(
            "error: dinowm.cluster.job runs inside a Slurm job (SLURM_JOB_ID is not set); "
            "submit it with 'dinowm run --slurm' or 'dinowm resume RUN'.",
            file=sys.stderr,
        )
        return 2
    run_dir = project.outputs / run_id
    spec = rundir.read_spec(run_dir)
    opts = from_dict(spec.get("slurm") or {})
    nodelist = os.environ.get("SLURM_JOB_NODELIST", socket.gethostname())
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    db = private_index(job)
    try:
        with Store(db, journal=rundir.JOB_RECORD) as store:
            rebuild_run(store, run_dir)
            row = store.run(run_id)
            if row["status"] == "completed" and row["epoch"] >= row["epochs_target"]:
                print(f"run {run_id} already completed {row['epoch']} epochs; nothing to do")
                return 0
            if row["status"] == "cancelled":
                print(f"run {run_id} was cancelled; 'dinowm resume {run_id}' resumes it")
                return 0
            store.update_run(
                run_id,
                slurm_job_id=job,
                slurm_nodes=nodelist,
                slurm_restarts=restarts,
                status="created",
            )
            store.add_incident(
                run_id,
                "slurm",
                f"allocation {restarts + 1} of Slurm job {job} started on {nodelist}",
                {"job_id": job, "nodes": nodelist, "restarts": restarts},
                attempt=row.get("attempts"),
            )
        private = dataclasses.replace(project, runs_db=db)
        sup = JobSupervisor(private, run_id, opts, job, nodelist)
        try:
            status = sup.supervise()
        except LockHeld as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return _after(db, run_id, job, status)
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)


def _after(db: Path, run_id: str, job: str, status: str) -> int:
    """Requeue the job when its supervisor recorded it pending (its time limit was near)."""
    if status != "stopped":
        return 0 if status == "completed" else 1
    with Store(db, journal=rundir.JOB_RECORD) as store:
        row = store.run(run_id)
        if row["status"] != "pending":
            return 0
        store.add_incident(
            run_id,
            "requeue",
            f"time limit near: checkpointed at epoch "
            f"{row['epoch']}, Slurm job {job} requeued to continue",
            {"job_id": job, "epoch": row["epoch"]},
            attempt=row.get("attempts"),
        )
        try:
            slurm.requeue(job)  # Slurm ends this allocation now
        except slurm.SlurmError as exc:
            store.update_run(
                run_id,
                status="stopped",
                ended_at=time.time(),
                exit_reason=f"time limit: requeue failed ({exc}); 'dinowm resume "
                f"{run_id}' continues it",
            )
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dinowm.cluster.job",
        description="Supervise a run inside its Slurm job "
        "(the batch script of 'dinowm run --slurm').",
    )
    parser.add_argument("--config", required=True, help="the project's dinowm.toml")
    parser.add_argument("--run", required=True, help="the run id")
    args = parser.parse_args(argv)
    return run_job(load_project(args.config), args.run)


if __name__ == "__main__":
    sys.exit(main())

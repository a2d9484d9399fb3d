# SPDX-License-Identifier: MIT
"""How a run's processes start: the trainer's command and environment on this machine, and the
detached supervisor of `dinowm run` and `dinowm resume`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from dinowm import rundir
from dinowm.config import Project
from dinowm.rundir import RunLock
from dinowm.schema import RunConfig
from dinowm.store import Store
from dinowm.supervise import procinfo


def trainer_command(cfg: RunConfig) -> list[str]:
    """How a trainer starts: one process, or torchrun with one rank per GPU on this machine."""
    ranks = cfg.dist.nproc_per_node
    if ranks == 1:
        return [sys.executable, "-m", "dinowm.train"]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        "--max-restarts=0",
        "-m",
        "dinowm.train",
    ]


def flight_recorder(run_dir: Path, cfg: RunConfig) -> dict[str, str]:
    """On CUDA with several ranks, NCCL's flight recorder dumps each rank's last collectives
    into the run folder when a collective times out (ranks/nccl_trace_rank_N)."""
    if cfg.dist.nproc_per_node == 1:
        return {}
    return {
        "TORCH_NCCL_TRACE_BUFFER_SIZE": "2000",
        "TORCH_NCCL_DUMP_ON_TIMEOUT": "1",
        "TORCH_FR_DUMP_TEMP_FILE": str(rundir.nccl_trace_prefix(run_dir)),
    }


def spawn_detached(project: Project, run_id: str, lock: RunLock | None = None) -> int:
    """Start a supervisor in its own session (it outlives the terminal); returns its pid.

    A held lock (from prepare_resume) passes to the child through an inherited descriptor, so
    the run is never unlocked between the check and the supervisor's start; the caller's copy
    is released here.
    """
    run_dir = project.outputs / run_id
    argv = [
        sys.executable,
        "-m",
        "dinowm.supervise.supervisor",
        "--config",
        str(project.config_path),
        "--run",
        run_id,
    ]
    fds: tuple[int, ...] = ()
    if lock is not None:
        fds = (lock.inheritable_fd(),)
        argv += ["--lock-fd", str(fds[0])]
    try:
        with open(run_dir / rundir.SUPERVISOR_LOG, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=project.root,
                pass_fds=fds,
            )
        if lock is not None:
            lock.record(proc.pid)
    finally:
        if lock is not None:
            lock.release()
    ref = procinfo.ProcessRef.of(proc.pid)
    with Store(project.runs_db) as store:
        store.update_run(
            run_id, supervisor_pid=ref.pid, supervisor_start=ref.start, host=socket.gethostname()
        )
    return proc.pid

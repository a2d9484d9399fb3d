# SPDX-License-Identifier: MIT
"""The batch script of a cluster run: readable, kept in the run folder, submitted as it is."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from dinowm import rundir
from dinowm.cluster.options import SlurmOptions


def job_name(name: str) -> str:
    """'dinowm-<run name>', in the characters squeue shows well."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"dinowm-{clean}"[:64]


def render(
    run_id: str,
    name: str,
    run_dir: Path,
    config_path: Path,
    root: Path,
    opts: SlurmOptions,
    ranks_per_node: int,
    python: str | None = None,
) -> str:
    """The sbatch script; the job runs dinowm's supervisor, which starts the ranks."""
    python = python or sys.executable
    lines = [
        "#!/bin/bash",
        f"# dinowm run {run_id} ({name}): the batch job of one supervised training run.",
        "# Written by `dinowm run --slurm`; `dinowm resume RUN` submits it again.",
        "# Inside the allocation, dinowm's supervisor starts one torchrun on each node with",
        f"# srun ({ranks_per_node} rank{'s' * (ranks_per_node != 1)} per node), watches every "
        f"rank, resumes after a crash or a stall,",
        f"# and {opts.signal_s} s before the time limit (SIGUSR1) checkpoints and requeues "
        f"this job,"
        if opts.requeue
        else f"# and {opts.signal_s} s before the time limit (SIGUSR1) checkpoints and stops,",
        "# which then continues from that checkpoint. Its record is the run folder:",
        f"#   {run_dir}",
        f"#SBATCH --job-name={job_name(name)}",
        f"#SBATCH --nodes={opts.nodes}",
        "#SBATCH --ntasks-per-node=1",
    ]
    if opts.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={opts.gpus_per_node}")
    if opts.cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={opts.cpus_per_task}")
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.account:
        lines.append(f"#SBATCH --account={opts.account}")
    if opts.time:
        lines.append(f"#SBATCH --time={opts.time}")
    lines += [
        f"#SBATCH --signal=B:USR1@{opts.signal_s}",
        "#SBATCH --requeue" if opts.requeue else "#SBATCH --no-requeue",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={run_dir / rundir.SLURM_OUT}",
        f"#SBATCH --chdir={root}",
        *(f"#SBATCH {option}" for option in opts.extra),
        "",
        "set -eu",
        "export PYTHONUNBUFFERED=1",
        'echo "--- allocation of job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on '
        "$SLURM_JOB_NODELIST, $(date '+%Y-%m-%d %H:%M:%S') ---\"",
        "exec "
        + shlex.join(
            [python, "-m", "dinowm.cluster.job", "--config", str(config_path), "--run", run_id]
        ),
        "",
    ]
    return "\n".join(lines)

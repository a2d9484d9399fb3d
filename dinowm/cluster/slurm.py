# SPDX-License-Identifier: MIT
"""Slurm's client commands (sbatch, squeue, sacct, scontrol, scancel), each with a timeout.

dinowm never links to Slurm: it runs the commands the cluster's users run, so any Slurm that
the login node's own `squeue` talks to works, and a test cluster is Debian's slurm-wlm.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dinowm.errors import ConfigError, DinowmError

COMMANDS = ("sbatch", "squeue", "scancel", "scontrol")
TIMEOUT_S = 30.0
_NODE_ADDR = re.compile(r"^NodeName=(\S+)\s.*?\bNodeAddr=(\S+)", re.M)  # scontrol -o show node

# States of a job that may still run (Slurm's names); every other state is final.
LIVE = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "SPECIAL_EXIT",
        "RESV_DEL_HOLD",
    }
)


class SlurmError(DinowmError):
    """A Slurm command failed (its own message is quoted)."""


@dataclass(frozen=True)
class JobState:
    """One job as Slurm reports it."""

    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, NODE_FAIL, PREEMPTED, ...
    reason: str = ""  # why it pends (Priority, Resources, BeginTime, ...), "" when none
    nodes: str = ""  # the node list while it runs
    restarts: int = 0  # how often Slurm requeued it

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def describe(self) -> str:
        """'PENDING (Resources)', 'RUNNING on node[1-2]', 'TIMEOUT'."""
        text = self.state
        if self.reason and self.reason != "None":
            text += f" ({self.reason})"
        if self.nodes and self.state in ("RUNNING", "COMPLETING"):
            text += f" on {self.nodes}"
        return text


def missing() -> list[str]:
    """Slurm client commands not on PATH."""
    return [c for c in COMMANDS if shutil.which(c) is None]


def require(what: str = "--slurm") -> None:
    """Refuse in one line (exit 2) on a machine without Slurm's client commands."""
    gone = missing()
    if gone:
        raise ConfigError(
            f"{what}: Slurm's {', '.join(gone)} not found on PATH "
            f"({os.environ.get('PATH', '')[:80]}...); run this on the cluster's "
            f"login node, or install Slurm's client (Debian: apt-get install "
            f"slurm-client) and point SLURM_CONF at the cluster's slurm.conf."
        )


def _run(
    args: list[str], timeout: float = TIMEOUT_S, check: bool = True
) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} not found on PATH; is Slurm installed here?") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(
            f"{' '.join(args[:3])} did not answer within {timeout:.0f} s; is slurmctld reachable?"
        ) from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SlurmError(f"{args[0]} failed (exit {proc.returncode}): {last}")
    return proc


def submit(script: Path) -> str:
    """sbatch SCRIPT (it sets its own working folder); returns the job id."""
    out = _run(["sbatch", "--parsable", str(script)], timeout=60.0).stdout.strip()
    job = out.split(";")[0]
    if not job.isdigit():
        raise SlurmError(f"sbatch printed {out!r}, not a job id.")
    return job


def query(job_ids: list[str]) -> dict[str, JobState]:
    """Each job's state: squeue first (it knows pending, running and recently ended jobs),
    then sacct for older ones where accounting is on. Unknown jobs are left out."""
    ids = sorted({j for j in job_ids if j})
    if not ids:
        return {}
    found: dict[str, JobState] = {}
    proc = _run(
        [
            "squeue",
            "--states=all",
            "-h",
            "-j",
            ",".join(ids),
            "-O",
            "JobID:|,State:|,Reason:|,NodeList:|,RestartCnt:|",
        ],
        check=False,
    )
    if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SlurmError(f"squeue failed (exit {proc.returncode}): {last}")  # not "unknown"
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 5 and parts[0] in ids:
            found[parts[0]] = JobState(
                parts[0], parts[1], parts[2], parts[3], int(parts[4]) if parts[4].isdigit() else 0
            )
    rest = [j for j in ids if j not in found]
    if rest and shutil.which("sacct"):
        proc = _run(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                ",".join(rest),
                "-o",
                "JobIDRaw,State,Reason,NodeList",
            ],
            check=False,
        )
        if proc.returncode == 0:  # "accounting storage is disabled" on small clusters
            for line in proc.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 4 and parts[0] in rest:
                    state = parts[1].split()[0]  # "CANCELLED by 1000"
                    found[parts[0]] = JobState(parts[0], state, parts[2], parts[3])
    return found


def cancel(job: str, signal: str | None = None, batch_only: bool = False) -> None:
    """scancel JOB (or send SIGNAL, to the batch step only with batch_only)."""
    args = ["scancel"]
    if signal:
        args.append(f"--signal={signal}")
        if batch_only:
            args.append("--batch")
    _run([*args, job])


def cancel_step(job: str, step: str, signal: str = "KILL") -> None:
    """Signal one step of a job (the trainer's srun step)."""
    _run(["scancel", f"--signal={signal}", f"{job}.{step}"], check=False)


def steps(job: str) -> dict[str, str]:
    """The job's running steps by name: {name: step id}."""
    proc = _run(["squeue", "-h", "-s", "-j", job, "-o", "%i|%j"], check=False)
    out = {}
    for line in proc.stdout.splitlines():
        step_id, _, name = line.partition("|")
        if "." in step_id:
            out[name.strip()] = step_id.split(".", 1)[1]
    return out


def requeue(job: str) -> None:
    """Put a running job back in the queue (Slurm ends its allocation first, then holds it for
    its credential lifetime, AuthInfo cred_expire, 120 s by default, before it may start)."""
    _run(["scontrol", "requeue", job])


def _answer(args: list[str]) -> str:
    """A command's stdout; '' where it failed, is missing or did not answer in time."""
    try:
        return _run(args, check=False).stdout
    except SlurmError:
        return ""


def hostnames(nodelist: str) -> list[str]:
    """The hosts of a Slurm node list in order ('gpu[03-05]' → ['gpu03', 'gpu04', 'gpu05']);
    the list split at its commas where scontrol does not answer."""
    names = _answer(["scontrol", "show", "hostnames", nodelist]).split()
    return names or [n for n in nodelist.split(",") if n]


def node_addrs(names: list[str]) -> dict[str, str]:
    """Each node's NodeAddr, the address Slurm itself reaches it at (`scontrol show node`;
    Slurm reports the node's name where slurm.conf sets none, and so does this where scontrol
    does not answer)."""
    found = dict(_NODE_ADDR.findall(_answer(["scontrol", "-o", "show", "node", ",".join(names)])))
    return {name: found.get(name) or name for name in names}

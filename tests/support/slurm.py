# SPDX-License-Identifier: MIT
"""A real one-node Slurm cluster on localhost for the cluster tests (Debian's slurm-wlm).

Its credential lifetime (AuthInfo cred_expire) is 5 s instead of 120 s: Slurm holds a
requeued job that long before it may start again, and the requeue tests wait for it; its
scheduler looks at pending jobs every 3 s instead of every 60 s.

munged, slurmctld and slurmd run as this user with their key, config, state, spool and logs in
a temporary folder and their own ports; they are stopped by pid at the end. Without slurm-wlm
the tests skip saying how to install it, unless DINOWM_REQUIRE_SLURM=1 (set by .ci/run, which
installs it), where a missing Slurm fails them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import unavailable

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "srun")
INSTALL = "apt-get install -y slurm-wlm munge"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def missing() -> list[str]:
    return [c for c in (*DAEMONS, *CLIENTS) if _which(c) is None]


class Cluster:
    """The running cluster: `env` points Slurm's commands at it."""

    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.env = {"SLURM_CONF": str(root / "slurm.conf")}
        self.pids: dict[str, Path] = {}

    def start(self) -> None:
        root = self.root
        for sub in ("munge", "state", "spool", "log"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = root / "munge" / "munge.sock"
        self.pids["munged"] = root / "munge" / "munged.pid"
        subprocess.run([_which("munged"), "--force", f"--key-file={key}", f"--socket={sock}",
                        f"--pid-file={self.pids['munged']}",
                        f"--log-file={root / 'munge' / 'munged.log'}",
                        f"--seed-file={root / 'munge' / 'seed'}"], check=True, timeout=30)
        ctld_port, slurmd_port = free_ports(2)
        self.pids["slurmctld"] = root / "slurmctld.pid"
        self.pids["slurmd"] = root / "slurmd.pid"
        user = os.environ.get("USER") or "root"
        (root / "slurm.conf").write_text(f"""\
ClusterName=dinowmtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={sock},cred_expire=5
CredType=cred/munge
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={self.pids['slurmctld']}
SlurmdPidFile={self.pids['slurmd']}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=3
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
KillWait=10
InactiveLimit=0
JobRequeue=1
MpiDefault=none
NodeName={self.host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        env = {**os.environ, **self.env}
        conf = str(root / "slurm.conf")
        subprocess.run([_which("slurmctld"), "-f", conf], check=True, env=env, timeout=30)
        subprocess.run([_which("slurmd"), "-f", conf], check=True, env=env, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                 text=True, timeout=30).stdout.split()
            if out and out[0] == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test cluster's node never became idle; see {root / 'log'}")

    def stop(self) -> None:
        """Stop the daemons by pid (slurmd, slurmctld, munged), waiting for each to exit."""
        for name in reversed(DAEMONS):
            path = self.pids.get(name)
            try:
                pid = int(path.read_text().split()[0]) if path else 0
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> str:
        """A Slurm command against this cluster; its stdout."""
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True,
                              text=True, timeout=timeout, check=check).stdout

    def log(self, name: str = "slurmctld") -> str:
        path = self.root / "log" / f"{name}.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node Slurm cluster on localhost with 2 CPUs, for this test session."""
    gone = missing()
    if gone:
        unavailable(f"slurm-wlm not installed ({', '.join(gone)} missing): {INSTALL}",
                    "DINOWM_REQUIRE_SLURM")
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

# SPDX-License-Identifier: MIT
"""Real Slurm clusters on localhost for the cluster tests (Debian's slurm-wlm): one node named
after this host, or two nodes n1 (NodeAddr 127.0.0.1) and n2 (127.0.0.2), each its own slurmd
(`slurmd -N n1`, `-N n2`) on its own port, so that `srun -N2` starts a task on each.

Their credential lifetime (AuthInfo cred_expire) is 5 s instead of 120 s: Slurm holds a
requeued job that long before it may start again, and the requeue tests wait for it; their
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
TWO_NODES = {"n1": "127.0.0.1", "n2": "127.0.0.2"}


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
    """The running cluster: `env` points Slurm's commands at it; `nodes` maps each node's name to
    its NodeAddr (one node: this host's name)."""

    def __init__(self, root: Path, nodes: dict[str, str] | None = None):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.nodes = nodes or {self.host: "127.0.0.1"}
        self.env = {"SLURM_CONF": str(root / "slurm.conf")}
        self.pids: dict[str, Path] = {}  # daemon → its pid file, in the order they started

    def start(self) -> None:
        root = self.root
        for sub in ("munge", "state", "spool", "log"):
            (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        sock = self._munged()
        self.pids["slurmctld"] = root / "slurmctld.pid"
        conf = root / "slurm.conf"
        conf.write_text(self._conf(sock))
        env = {**os.environ, **self.env}
        subprocess.run([_which("slurmctld"), "-f", str(conf)], check=True, env=env, timeout=30)
        for name in self.nodes:
            self.pids[f"slurmd-{name}"] = root / f"slurmd-{name}.pid"
            many = ["-N", name] if len(self.nodes) > 1 else []
            subprocess.run([_which("slurmd"), "-f", str(conf), *many], check=True, env=env,
                           timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True,
                                 text=True, timeout=30).stdout.split()
            if len(out) == len(self.nodes) and set(out) == {"idle"}:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test cluster's nodes never became idle; see {root / 'log'}")

    def _munged(self) -> Path:
        """munged with a fresh key; returns its socket."""
        root = self.root
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = root / "munge" / "munge.sock"
        self.pids["munged"] = root / "munge" / "munged.pid"
        subprocess.run([_which("munged"), "--force", f"--key-file={key}", f"--socket={sock}",
                        f"--pid-file={self.pids['munged']}",
                        f"--log-file={root / 'munge' / 'munged.log'}",
                        f"--seed-file={root / 'munge' / 'seed'}"], check=True, timeout=30)
        return sock

    def _conf(self, sock: Path) -> str:
        """slurm.conf: one slurmd per node, each on a free port of its own."""
        root = self.root
        ctld_port, *ports = free_ports(1 + len(self.nodes))
        user = os.environ.get("USER") or "root"
        node = "%n" if len(self.nodes) > 1 else ""  # several slurmd: one pid file and log each
        lines = [f"NodeName={name} NodeAddr={addr} Port={port} CPUs=2 State=UNKNOWN"
                 for (name, addr), port in zip(self.nodes.items(), ports)]
        return f"""\
ClusterName=dinowmtest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={ports[0]}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={sock},cred_expire=5
CredType=cred/munge
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={self.spool('%n')}
SlurmctldPidFile={self.pids['slurmctld']}
SlurmdPidFile={root / f'slurmd-{node or next(iter(self.nodes))}.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / f'slurmd-{node or next(iter(self.nodes))}.log'}
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
{chr(10).join(lines)}
PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP
"""

    def stop(self) -> None:
        """Stop the daemons by pid (the slurmd, slurmctld, munged), waiting for each to exit."""
        for path in reversed(list(self.pids.values())):
            try:
                pid = int(path.read_text().split()[0])
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

    def job(self, job: str) -> dict[str, str]:
        """`scontrol show job` of one job as its fields (JobState, Restarts, TimeLimit, ...)."""
        out = self.run("scontrol", "show", "job", "--oneliner", job, check=False)
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def hold_when_requeued(self, job: str, timeout: float = 240) -> None:
        """Hold JOB as soon as Slurm has requeued it (its restart count up, pending again), as
        an administrator would with scontrol: it stays pending until release()."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fields = self.job(job)
            if fields.get("Restarts", "0") != "0" and fields.get("JobState") == "PENDING":
                self.run("scontrol", "hold", job)
                return
            time.sleep(0.2)
        raise AssertionError(f"job {job} was not requeued within {timeout:g} s: {fields}")

    def spool(self, node: str) -> Path:
        """A node's SlurmdSpoolDir (slurm.conf's, where node is '%n'): one of its own where
        several slurmd share this host."""
        return self.root / "spool" / (node if len(self.nodes) > 1 else "")

    def steps_left(self, job: str) -> list[str]:
        """The job's steps that some slurmd still runs: each slurmstepd keeps a socket
        NODE_JOB.STEP in its node's spool until it has ended (the batch step first; an srun
        step can outlive the batch script by seconds on a busy machine)."""
        nodes = self.nodes
        return sorted(p.name for name in nodes for p in self.spool(name).glob(f"{name}_{job}.*"))

    def release(self, job: str, time_limit_min: int | None = None, timeout: float = 120) -> None:
        """Let a held job start, with a new time limit where given, once no step of its last
        allocation is left on a node (started beside one, the job would drain the node:
        "Duplicate jobid")."""
        deadline = time.monotonic() + timeout
        while left := self.steps_left(job):
            assert time.monotonic() < deadline, f"job {job}'s steps {left} outlived {timeout:g} s"
            time.sleep(0.2)
        if time_limit_min is not None:
            self.run("scontrol", "update", f"JobId={job}", f"TimeLimit={time_limit_min}")
        self.run("scontrol", "release", job)

    def log(self, name: str = "slurmctld") -> str:
        """A daemon's log: slurmctld, or slurmd-NODE."""
        path = self.root / "log" / f"{name}.log"
        return path.read_text() if path.exists() else ""


def _cluster(factory: pytest.TempPathFactory, nodes: dict[str, str] | None) -> Iterator[Cluster]:
    gone = missing()
    if gone:
        unavailable(f"slurm-wlm not installed ({', '.join(gone)} missing): {INSTALL}",
                    "DINOWM_REQUIRE_SLURM")
    cluster = Cluster(factory.mktemp("slurm"), nodes)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node Slurm cluster on localhost with 2 CPUs, for this test session."""
    yield from _cluster(tmp_path_factory, None)


@pytest.fixture(scope="module")
def slurm_two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two Slurm nodes on localhost, n1 at 127.0.0.1 and n2 at 127.0.0.2, 2 CPUs each, for one
    test module: their ranks sort by address, so rank 0 runs on n1 and rank 1 on n2."""
    yield from _cluster(tmp_path_factory, TWO_NODES)

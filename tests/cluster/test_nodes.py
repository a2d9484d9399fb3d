# SPDX-License-Identifier: MIT
"""A job on several nodes without Slurm: each node's torchrun options, train.log split by
srun's task labels, the rank that failed first named with its node, and a rendezvous that
failed read from real torchrun's own output (a name that does not resolve, a port nobody
answers), each in one line that the supervisor does not retry."""

from __future__ import annotations

import re
import subprocess
import sys

from dinowm.cluster import nodes, slurm
from dinowm.cluster.nodes import Endpoint
from dinowm.schema import WatchdogConfig
from dinowm.supervise.watchdog import Outcome, decide
from tests.support.slurm import free_ports

ADDRS = {"n1": "10.1.0.1", "n2": "10.1.0.2"}


def test_the_first_node_hosts_the_rendezvous_at_its_own_address() -> None:
    assert nodes.decode(nodes.encode(ADDRS)) == ADDRS and nodes.decode("n1") == {"n1": "n1"}
    conf = f"--rdzv-conf=read_timeout={nodes.READ_TIMEOUT_S}"
    assert nodes.torchrun_args(ADDRS, "n1", "0") == ["--local-addr=10.1.0.1", f"{conf},is_host=1"]
    assert nodes.torchrun_args(ADDRS, "n2", "1") == ["--local-addr=10.1.0.2", f"{conf},is_host=0"]
    assert nodes.torchrun_args(ADDRS, "other", "0") == [f"{conf},is_host=1"]  # Slurm's node id


def test_node_addrs_reads_scontrol_and_falls_back_to_the_name(monkeypatch) -> None:
    out = ("NodeName=n1 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.1.0.1 NodeHostName=n1\n"
           "NodeName=n2 Arch=x86_64 CoresPerSocket=1 NodeAddr=n2 NodeHostName=n2\n")
    seen = []

    def run(args, timeout=slurm.TIMEOUT_S, check=True):
        seen.append(args)
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(slurm, "_run", run)
    assert slurm.node_addrs(["n1", "n2", "n3"]) == {"n1": "10.1.0.1", "n2": "n2", "n3": "n3"}
    assert seen == [["scontrol", "-o", "show", "node", "n1,n2,n3"]]


def _report(rank: int, code: str, time: str = "2026-12-07_02:12:51") -> list[str]:
    """torchrun's failure report as it prints it."""
    return ["Root Cause (first observed failure):", "[0]:", f"  time      : {time}",
            "  host      : localhost", f"  rank      : {rank} (local_rank: 0)",
            f"  exitcode  : {code}", "=" * 54]


def test_the_rank_that_failed_first_is_named_with_its_node() -> None:
    # n2's rank 1 was SIGKILLed; n1's rank 0 then failed on the lost connection in the same
    # second: the killed rank is the cause, on n2 (task 1), whatever order the lines came in.
    lines = ["--- attempt 1 started ---", *(f"0: {x}" for x in _report(0, "1 (pid: 11)")),
             *(f"1: {x}" for x in _report(1, "-9 (pid: 22)  (SIGKILL)")),
             "srun: error: n1: task 0: Exited with exit code 1",
             "srun: error: n2: task 1: Exited with exit code 1"]
    out = nodes.split(lines, ["n1", "n2"])
    assert out.srun == lines[-2:] and len(out.by_node["n2"]) == 7
    failed, node = nodes.first_failure(out)
    assert (failed.rank, failed.exit_code, failed.pid, node) == (1, -9, 22, "n2")
    # an earlier report wins
    lines = [*(f"1: {x}" for x in _report(1, "-9 (pid: 22)  (SIGKILL)")),
             *(f"0: {x}" for x in _report(0, "3 (pid: 11)", "2026-12-07_02:12:50"))]
    failed, node = nodes.first_failure(nodes.split(lines, ["a1", "b7"]))
    assert (failed.rank, failed.exit_code, node) == (0, 3, "a1")
    assert nodes.first_failure(nodes.split(["0: no report"], ["n1"])) is None


def _torchrun(endpoint: str) -> subprocess.Popen[str]:
    """torchrun as a node other than the first (a client of the store), with a 2 s timeout."""
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
         "--max-restarts=0", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
         "--rdzv-id=t", "--rdzv-conf=read_timeout=2,is_host=0", "--no-python", "true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_rendezvous_that_cannot_connect_is_one_line_from_torchruns_own_output() -> None:
    port = free_ports(1)[0]  # nobody listens there
    bad_name, silent = _torchrun("n1-nowhere.invalid:29504"), _torchrun(f"127.0.0.1:{port}")
    outputs = [p.communicate(timeout=120)[0] for p in (bad_name, silent)]
    assert bad_name.returncode and silent.returncode, outputs
    # as srun --label puts n2's lines into train.log
    out = nodes.split([f"1: {x}" for x in outputs[0].splitlines()], ["n1", "n2"])
    failed = nodes.rendezvous_failure(out, Endpoint("n1", "n1-nowhere.invalid", 29504))
    assert failed is not None and failed["nodes"] == "n2", outputs[0][-3000:]
    assert re.fullmatch(  # the resolver's own words in brackets
        r"rendezvous at n1-nowhere\.invalid:29504 \(node n1\) failed: the name "
        r"n1-nowhere\.invalid does not resolve on n2 \([^)]+\); set NodeAddr for n1 in "
        r"slurm\.conf to an address every node resolves, or make n1-nowhere\.invalid "
        r"resolvable on n2 \(/etc/hosts or DNS\)", failed["summary"]), failed["summary"]
    out = nodes.split([f"1: {x}" for x in outputs[1].splitlines()], ["n1", "n2"])
    failed = nodes.rendezvous_failure(out, Endpoint("n1", "127.0.0.1", port))
    assert failed is not None and failed["summary"] == (
        f"rendezvous at 127.0.0.1:{port} (node n1) failed: n2 could not connect within 2 s; "
        f"check that 127.0.0.1 (its NodeAddr) reaches n1 from the other nodes, that n1's "
        f"torchrun started, and that no firewall closes port {port}; set NodeAddr for n1 in "
        f"slurm.conf to an address the other nodes reach"), failed["summary"]
    assert "\n" not in failed["summary"]
    # a crash after the rendezvous is not one
    assert nodes.rendezvous_failure(nodes.split(["0: Traceback", "0: ValueError: x"], ["n1"]),
                                    Endpoint("n1", "n1", 1)) is None


def test_a_failed_rendezvous_is_not_retried() -> None:
    outcome = Outcome("rendezvous", "rendezvous at n1:29504 (node n1) failed: ...", steps=0)
    decision = decide(outcome, [], WatchdogConfig(), automatic_resumes=0)
    assert (decision.action, decision.status) == ("finish", "failed")
    assert decision.reason == f"{outcome.message} (not retried)"

# SPDX-License-Identifier: MIT
"""A job on several nodes: each node's torchrun at the first node's NodeAddr, each node's lines
of train.log, the rank that failed first with its node, a failed rendezvous in one line.

srun starts `python -m dinowm.cluster.nodes NODES -- TORCHRUN-ARGS` on every node (NODES:
"n1=ADDR1,n2=ADDR2", the first node first, each address its `NodeAddr`); it execs torchrun with
this node's address as its own (`--local-addr`, the address the other nodes reach it at) and
only the first node hosting the rendezvous store (`is_host`), never torchrun's guess from host
names. srun's `--label` prefixes each task's lines with its task number, one task per node.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import dataclass, field

from dinowm.supervise import ranks
from dinowm.supervise.ranks import RankFailure

# torchrun waits this long (about twice, with its retry) for the first node's store; its default
# of 60 s made an unreachable endpoint cost minutes per attempt.
READ_TIMEOUT_S = 15
_LABEL = re.compile(r"^\s*(\d+): ?(.*)$")
_RDZV_ERROR = re.compile(r"\b(Rendezvous(?:Connection|Timeout|Closed)?Error)\b")
_UNRESOLVED = re.compile(
    r"network addresses of \(([^,]+), (\d+)\) cannot be retrieved \(gai error: -?\d+ - ([^)]*)\)"
)
_RDZV_TIMEOUT = re.compile(r"RendezvousTimeoutError")
_IN_USE = re.compile(r"EADDRINUSE|address already in use", re.I)
_REFUSED = re.compile(r"ECONNREFUSED|Connection refused", re.I)
_TIMED_OUT = re.compile(r"timed out after (\d+)ms while trying to connect to \(([^,]+), (\d+)\)")
_TIME = re.compile(r"^\s*time\s*:\s*(\S+)", re.M)
_TEARDOWN = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Endpoint:
    """Where the rendezvous is: the first node, its NodeAddr, the attempt's port."""

    node: str
    addr: str
    port: int

    def __str__(self) -> str:
        return f"{self.addr}:{self.port}"


@dataclass
class NodeLines:
    """One attempt's train.log split by node (srun's task labels), and srun's own lines."""

    by_node: dict[str, list[str]] = field(default_factory=dict)
    srun: list[str] = field(default_factory=list)  # "srun: error: n2: task 1: Exited with ..."

    def having(self, pattern: re.Pattern[str]) -> list[str]:
        """The nodes with a line that matches."""
        return [n for n, lines in self.by_node.items() if any(pattern.search(x) for x in lines)]


def encode(addrs: dict[str, str]) -> str:
    """{'n1': '10.0.0.1', 'n2': '10.0.0.2'} → 'n1=10.0.0.1,n2=10.0.0.2'."""
    return ",".join(f"{name}={addr}" for name, addr in addrs.items())


def decode(text: str) -> dict[str, str]:
    """The inverse of encode."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {name: addr or name for name, _, addr in pairs}


def torchrun_args(addrs: dict[str, str], me: str, node_id: str | None) -> list[str]:
    """This node's torchrun options: its own address, and whether it hosts the store."""
    first = next(iter(addrs))
    host = me == first if me in addrs else node_id == "0"
    own = [f"--local-addr={addrs[me]}"] if me in addrs else []
    return [*own, f"--rdzv-conf=read_timeout={READ_TIMEOUT_S},is_host={int(host)}"]


def split(lines: list[str], names: list[str]) -> NodeLines:
    """Lines labelled 'TASK: ' by srun go to their node (one task per node, task i on the i-th
    node of the allocation); unlabelled lines are srun's own or the supervisor's."""
    out = NodeLines(by_node={n: [] for n in names})
    for line in lines:
        label = _LABEL.match(line)
        if label:
            task = int(label.group(1))
            node = names[task] if task < len(names) else f"task {task}"
            out.by_node.setdefault(node, []).append(label.group(2))
        elif line.startswith("srun: "):
            out.srun.append(line)
    return out


def first_failure(out: NodeLines) -> tuple[RankFailure, str] | None:
    """The rank that failed first across the nodes' torchrun reports, and its node.

    Reports carry the second they were written; within one second a rank that died of a
    signal other than a teardown's (SIGTERM, SIGINT, SIGHUP) counts as the cause, then one
    that exited with its own code (not 1, a peer's lost connection), then one beside rank 0.
    """
    found = []
    for node, lines in out.by_node.items():
        failed = ranks.first_failure(lines)
        if failed is None:
            continue
        stamps = _TIME.findall("\n".join(lines))
        sig = -failed.exit_code if failed.exit_code < 0 else 0
        order = (
            stamps[-1] if stamps else "~",
            0 if sig and sig not in _TEARDOWN else 1,
            0 if failed.exit_code not in (0, 1) else 1,
            0 if failed.rank != 0 else 1,
        )
        found.append((order, failed, node))
    if not found:
        return None
    _, failed, node = min(found, key=lambda f: f[0])
    return failed, node


def rendezvous_failure(out: NodeLines, at: Endpoint) -> dict[str, str] | None:
    """A rendezvous that did not connect, in one line (`summary`) with its `cause`, the nodes
    it failed on and the fix; None when torchrun's output shows no rendezvous error."""
    failing = out.having(_RDZV_ERROR)
    if not failing:
        return None
    cause, fix = _cause(out, at) or (
        f"torchrun's rendezvous error on {_nodes(failing)}",
        "see torchrun's traceback in train.log",
    )
    summary = f"rendezvous at {at} (node {at.node}) failed: {cause}; {fix}"
    return {"summary": summary, "cause": cause, "fix": fix, "nodes": ",".join(failing)}


def _cause(out: NodeLines, at: Endpoint) -> tuple[str, str] | None:
    """What torchrun's own lines say went wrong, and the likely fix."""
    for lines in out.by_node.values():
        found = next((m for x in lines if (m := _UNRESOLVED.search(x))), None)
        if found:
            name, on = found.group(1), _nodes(out.having(_UNRESOLVED))
            return (
                f"the name {name} does not resolve on {on} ({found.group(3)})",
                f"set NodeAddr for {at.node} in slurm.conf to an address every node resolves, "
                f"or make {name} resolvable on {on} (/etc/hosts or DNS)",
            )
    if out.having(_IN_USE):
        return (
            f"port {at.port} on {at.node} is in use by another process",
            f"set slurm.rdzv_port so that the ports from it to it + 999 are free on the first "
            f"node, or end what holds port {at.port} on {at.node}",
        )
    timed = [m for lines in out.by_node.values() for x in lines if (m := _TIMED_OUT.search(x))]
    if timed or out.having(_REFUSED):
        who = _nodes(out.having(_TIMED_OUT) or out.having(_REFUSED))
        within = f" within {int(timed[0].group(1)) // 1000} s" if timed else " (refused)"
        what = "its NodeAddr" if at.addr != at.node else "its name: slurm.conf sets no NodeAddr"
        return (
            f"{who} could not connect{within}",
            f"check that {at.addr} ({what}) reaches {at.node} from the other nodes, that "
            f"{at.node}'s torchrun started, and that no firewall closes port {at.port}; set "
            f"NodeAddr for {at.node} in slurm.conf to an address the other nodes reach",
        )
    if out.having(_RDZV_TIMEOUT):
        return (
            "not every node joined in time",
            "see in train.log which node's torchrun did not start (srun's lines name it)",
        )
    return None


def _nodes(names: list[str]) -> str:
    """'n2' or 'n1 and n2' or 'n1, n2 and n3'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def main(argv: list[str] | None = None) -> int:
    """Exec torchrun with this node's options; its arguments follow '--'."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[1] != "--":
        print(
            "usage: python -m dinowm.cluster.nodes n1=ADDR1,n2=ADDR2 -- TORCHRUN-ARGS "
            "(srun starts it on every node of a dinowm job)",
            file=sys.stderr,
        )
        return 2
    me = os.environ.get("SLURMD_NODENAME", "")
    own = torchrun_args(decode(args[0]), me, os.environ.get("SLURM_NODEID"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", *own, *args[2:]]
    os.execv(sys.executable, torchrun)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

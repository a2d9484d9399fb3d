# SPDX-License-Identifier: MIT
"""What /proc says about a process and its family, and a bounded kill of a process group (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
GONE_STATES = {"Z", "X", "x"}
POLL_S = 0.02


def _stat_fields(path: Path) -> tuple[str, list[str]]:
    """(comm, [field 3, field 4, ...]) of a stat file; comm may hold spaces and parentheses."""
    text = path.read_bytes().decode("utf-8", "replace")
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def _stat(pid: int) -> tuple[str, list[str]] | None:
    try:
        return _stat_fields(PROC / str(pid) / "stat")
    except (FileNotFoundError, ProcessLookupError):
        return None


def _field(fields: list[str], number: int) -> str:
    """Field `number` as numbered in proc(5) (1 = pid, 2 = comm, 3 = state, ...)."""
    return fields[number - 3]


def start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks after boot (stat field 22), None if there is no such pid."""
    stat = _stat(pid)
    return None if stat is None else int(_field(stat[1], 22))


def _state(pid: int) -> str | None:
    stat = _stat(pid)
    return None if stat is None else _field(stat[1], 3)


@dataclass(frozen=True)
class ProcessRef:
    """A process named by pid and start time, so that a reused pid is never mistaken for it."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """The process now running as pid; ProcessLookupError if there is none."""
        start = start_time(pid)
        if start is None:
            raise ProcessLookupError(f"no process with pid {pid}")
        return cls(pid, start)

    def state(self) -> str | None:
        """Kernel state letter (R, S, D, T, t, Z, ...), None if gone or the pid was reused."""
        stat = _stat(self.pid)
        if stat is None or int(_field(stat[1], 22)) != self.start:
            return None
        return _field(stat[1], 3)

    def send(self, signum: int) -> bool:
        """Signal this very process (through a pidfd where the kernel has them); False if gone."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        except (AttributeError, OSError):  # no pidfd (Linux < 5.3): a small reuse window remains
            fd = None
        try:
            if self.state() is None:
                return False
            if fd is None:
                os.kill(self.pid, signum)
            else:
                signal.pidfd_send_signal(fd, signum)
            return True
        except ProcessLookupError:
            return False
        finally:
            if fd is not None:
                os.close(fd)

    def alive(self) -> bool:
        """True if this very process exists and has not exited (a zombie has exited)."""
        state = self.state()
        return state is not None and state not in GONE_STATES


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process in seconds; ProcessLookupError if gone."""
    stat = _stat(pid)
    if stat is None:
        raise ProcessLookupError(f"no process with pid {pid}")
    return (int(_field(stat[1], 14)) + int(_field(stat[1], 15))) / TICKS


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def threads(pid: int) -> list[dict[str, Any]]:
    """Each thread: tid, name, state, wchan (kernel function it sleeps in), ticks (utime+stime)."""
    out: list[dict[str, Any]] = []
    try:
        tasks = sorted((PROC / str(pid) / "task").iterdir(), key=lambda p: int(p.name))
    except OSError:
        return out
    for task in tasks:
        try:
            name, fields = _stat_fields(task / "stat")
        except OSError:  # the thread ended while we looked
            continue
        wchan = _read_text(task / "wchan")
        out.append(
            {
                "tid": int(task.name),
                "name": name,
                "state": _field(fields, 3),
                "wchan": None if wchan in (None, "", "0") else wchan,
                "ticks": int(_field(fields, 14)) + int(_field(fields, 15)),
            }
        )
    return out


def catches(pid: int, signum: int) -> bool:
    """True if pid has a handler installed for signum (SigCgt in /proc/PID/status)."""
    status = _read_text(PROC / str(pid) / "status") or ""
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _table() -> list[dict[str, Any]]:
    """Every process now visible: pid, ppid, pgid, comm, state."""
    rows = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, fields = _stat_fields(entry / "stat")
        except OSError:
            continue
        rows.append(
            {
                "pid": int(entry.name),
                "ppid": int(_field(fields, 4)),
                "pgid": int(_field(fields, 5)),
                "comm": comm,
                "state": _field(fields, 3),
            }
        )
    return rows


def _cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)


def descendants(pid: int) -> list[dict[str, Any]]:
    """Every process whose parent chain leads to pid: pid, ppid, comm, cmdline, state."""
    children: dict[int, list[dict[str, Any]]] = {}
    for row in _table():
        children.setdefault(row["ppid"], []).append(row)
    out, todo = [], [pid]
    while todo:
        for row in children.get(todo.pop(0), []):
            out.append(
                {
                    "pid": row["pid"],
                    "ppid": row["ppid"],
                    "comm": row["comm"],
                    "cmdline": _cmdline(row["pid"]),
                    "state": row["state"],
                }
            )
            todo.append(row["pid"])
    return out


def zombies(pid: int) -> list[dict[str, Any]]:
    """pid and its descendants that exited unreaped (`<defunct>`): pid, comm, ppid, parent_comm."""
    own = _stat(pid)
    family = descendants(pid)
    if own is not None:
        family.insert(
            0,
            {
                "pid": pid,
                "ppid": int(_field(own[1], 4)),
                "comm": own[0],
                "state": _field(own[1], 3),
            },
        )
    out = []
    for row in family:
        if row["state"] == "Z":
            parent = _stat(row["ppid"])
            out.append(
                {
                    "pid": row["pid"],
                    "comm": row["comm"],
                    "ppid": row["ppid"],
                    "parent_comm": None if parent is None else parent[0],
                }
            )
    return out


def group_members(pgid: int) -> list[int]:
    """Pids in process group pgid that have not exited (zombies are left out)."""
    return sorted(
        row["pid"] for row in _table() if row["pgid"] == pgid and row["state"] not in GONE_STATES
    )


def _signal_group(pgid: int, signum: signal.Signals, sent: list[str]) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    sent.append(signum.name)
    return True


def _reap(leader: int, popen: subprocess.Popen | None) -> tuple[bool, int | None]:
    """(exited, return code) of the leader, reaping it if it is our child."""
    if popen is not None:
        code = popen.poll()
        return code is not None, code
    try:
        done, status = os.waitpid(leader, os.WNOHANG)
    except ChildProcessError:  # not our child (or reaped already): its parent reaps it
        state = _state(leader)
        return state is None or state in GONE_STATES, None
    return bool(done), os.waitstatus_to_exitcode(status) if done else None


def _wait_groups(
    pgids: list[int],
    leader: int,
    popen: subprocess.Popen | None,
    deadline: float,
    exited: bool = False,
    code: int | None = None,
) -> tuple[bool, int | None]:
    """Poll until the leader has exited and the groups are empty, or until deadline."""
    while True:
        if not exited:
            exited, code = _reap(leader, popen)
        if (exited and not any(group_members(g) for g in pgids)) or time.monotonic() >= deadline:
            return exited, code
        time.sleep(POLL_S)


def kill_group(
    pgid: int,
    popen: subprocess.Popen | None,
    grace_s: float,
    kill_wait_s: float = 5.0,
    extra_groups: tuple[int, ...] = (),
) -> dict[str, Any]:
    """SIGTERM (+SIGCONT) the group, SIGKILL what is left after grace_s, reap; every wait bounded.

    extra_groups are signalled and waited for alongside (the ranks torchrun starts each lead a
    session of their own). Returns {pgid, signals, exited, killed, returncode, seconds,
    survivors}; survivors are members still there kill_wait_s after SIGKILL, with their threads
    in D state (a stuck driver or file system: SIGKILL does not finish until the kernel call
    returns).
    """
    t0 = time.monotonic()
    leader = popen.pid if popen is not None else pgid
    groups = [pgid, *[g for g in extra_groups if g != pgid]]
    sent: list[str] = []

    def signal_all(signum: signal.Signals) -> bool:
        done = [_signal_group(g, signum, []) for g in groups]
        if any(done):
            sent.append(signum.name)
        return any(done)

    if signal_all(signal.SIGTERM):
        signal_all(signal.SIGCONT)  # a stopped process acts on SIGTERM only now
        exited, code = _wait_groups(groups, leader, popen, t0 + grace_s)
    else:  # no such group: nothing to wait for
        exited, code = _reap(leader, popen)
    killed = any(group_members(g) for g in groups)
    if killed:
        signal_all(signal.SIGKILL)
        exited, code = _wait_groups(
            groups, leader, popen, time.monotonic() + kill_wait_s, exited, code
        )
    survivors = []
    for member in (m for g in groups for m in group_members(g)):
        stuck = [t for t in threads(member) if t["state"] == "D"]
        survivors.append({"pid": member, "state": _state(member), "d_threads": stuck})
    return {
        "pgid": pgid,
        "signals": sent,
        "exited": exited and not survivors,
        "killed": killed,
        "returncode": code,
        "seconds": round(time.monotonic() - t0, 3),
        "survivors": survivors,
    }


def kill_tree(
    pid: int, popen: subprocess.Popen | None, grace_s: float, kill_wait_s: float = 5.0
) -> dict[str, Any]:
    """kill_group of pid's group and of every group its descendants lead (torchrun's ranks)."""
    table = _table()
    children: dict[int, list[dict[str, Any]]] = {}
    for row in table:
        children.setdefault(row["ppid"], []).append(row)
    groups, todo = set(), [pid]
    while todo:
        for row in children.get(todo.pop(), []):
            groups.add(row["pgid"])
            todo.append(row["pid"])
    return kill_group(pid, popen, grace_s, kill_wait_s, tuple(sorted(groups - {pid})))

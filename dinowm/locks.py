# SPDX-License-Identifier: MIT
"""Locks a process holds for its whole life: an exclusive `flock` on a file, released by the
kernel when the process dies (a crash never leaves a stale lock), with the holder's identity
(pid, host, since when, Slurm job) written into the file for whoever is refused to quote.

The run folder's supervisor and trainer locks (dinowm.rundir), the queue supervisor's and an
evaluation's use them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm.errors import DinowmError

# A process that only looks (lost detection, a trainer checking its parent) holds a shared lock
# for microseconds; an acquirer that meets one tries again within this window.
_CONTENDED_S = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a run-folder lock, as it wrote itself into the lock file."""

    pid: int | None
    host: str | None
    since: float | None = None
    role: str = "supervisor"
    job: str | None = None  # the Slurm job the holder runs in

    def describe(self) -> str:
        """'pid 4242 on gpu-box (since 09:33:48)', with ', Slurm job 12' inside a job."""
        since = (
            f" (since {time.strftime('%H:%M:%S', time.localtime(self.since))})"
            if self.since
            else ""
        )
        job = f", Slurm job {self.job}" if self.job else ""
        return f"pid {self.pid if self.pid is not None else '?'} on {self.host or '?'}{job}{since}"


class LockHeld(DinowmError):
    """Another live process holds the run folder: the caller must not touch it."""

    def __init__(self, message: str, holder: Holder):
        super().__init__(message)
        self.holder = holder


class RunLock:
    """An exclusive lock on one lock file of a run folder, held until release or death."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, role: str = "supervisor") -> RunLock:
        """Take the lock now or raise LockHeld naming the holder; never waits for a holder."""
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + _CONTENDED_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = read_holder(path, role)
                    raise LockHeld(f"{path} is held by {holder.describe()}", holder) from None
                time.sleep(0.02)
        lock = cls(path, fd)
        lock.record(os.getpid(), role)
        return lock

    @classmethod
    def adopt(cls, path: Path, fd: int, role: str = "supervisor") -> RunLock:
        """Take over a lock inherited from the parent (`dinowm resume --detach` hands it on)."""
        path = Path(path)
        st, mine = os.fstat(fd), os.stat(path)
        if (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
            raise DinowmError(
                f"descriptor {fd} is not the lock file {path}; start the "
                f"supervisor through 'dinowm run' or 'dinowm resume'."
            )
        try:  # already ours through the shared open file description; this only confirms it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LockHeld(
                f"{path} is not held by descriptor {fd}", read_holder(path, role)
            ) from None
        os.set_inheritable(fd, False)
        lock = cls(path, fd)
        lock.record(os.getpid(), role)
        return lock

    def record(self, pid: int, role: str = "supervisor") -> None:
        """Write the holder's identity into the lock file (a child that takes it over too)."""
        assert self.fd is not None
        data = json.dumps(
            {
                "pid": pid,
                "host": socket.gethostname(),
                "since": time.time(),
                "role": role,
                "job": os.environ.get("SLURM_JOB_ID"),
            }
        ).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def inheritable_fd(self) -> int:
        """The descriptor, made inheritable for a child that takes the lock over."""
        assert self.fd is not None
        os.set_inheritable(self.fd, True)
        return self.fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor is enough; a dead process releases it too)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path, role: str = "supervisor") -> Holder:
    """The identity written into a lock file (its holder writes it just after locking)."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            data: dict[str, Any] = json.loads(Path(path).read_text() or "null") or {}
        except (OSError, ValueError):
            data = {}
        if data.get("pid") or time.monotonic() >= deadline:
            return Holder(
                data.get("pid"),
                data.get("host"),
                data.get("since"),
                data.get("role", role),
                data.get("job"),
            )
        time.sleep(0.02)


def holder(path: Path) -> Holder | None:
    """Who holds the lock file now, or None when nobody does (a probe, never a wait)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return read_holder(path)
        return None  # closing the descriptor drops the shared lock at once
    finally:
        os.close(fd)

# SPDX-License-Identifier: MIT
"""Fault injection for tests: DINOWM_FAULT="point:n:action[,point:n:action...]".

At the n-th time the code passes `point` (n = * for every time), `action` happens: oom (raise
CUDA out of memory), enospc (raise OSError: no space left), sleep=SECONDS, gate=PATH (wait
there until the file PATH exists: a test holds the trainer at a known step),
raise (RuntimeError), hang (sleep forever), busy (spin forever), sigkill / sigstop (to itself),
exit (os._exit(1)), spam (write 10 MB to stdout and go on), zombie (spawn a child that exits
and is never reaped), deadlock (wait on a lock this thread holds). A fault fires in the first
process that reaches it; set DINOWM_FAULT_ONCE=path to a file so that a resumed attempt does not
fire it again.
With several ranks (torchrun) a fault fires in every rank that reaches it; `action@R`
(e.g. global_step:3:sigkill@1) fires only in rank R (the RANK variable; 0 without torchrun),
and `action#A` (e.g. global_step:*:sleep=2#1) only in the run's attempt A (DINOWM_ATTEMPT, which
the supervisor sets; 1 without it): a slow first allocation whose requeued one runs at speed.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_counts: dict[str, int] = {}
_plan: list[tuple[str, int, str]] | None = None
_RANK = "@"
_ATTEMPT = "#"
_children: list[subprocess.Popen] = []


def _parse() -> list[tuple[str, int, str]]:
    spec = os.environ.get("DINOWM_FAULT", "")
    plan = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, n, action = item.split(":")
        action, _, attempt = action.partition(_ATTEMPT)
        action, _, rank = action.partition(_RANK)
        if rank and int(rank) != int(os.environ.get("RANK", "0")):
            continue  # planned for another rank
        if attempt and int(attempt) != int(os.environ.get("DINOWM_ATTEMPT", "1")):
            continue  # planned for another attempt
        plan.append((point, 0 if n == "*" else int(n), action))
    return plan


def fault(point: str, at: int | None = None) -> None:
    """Count a pass through `point` and fire a planned fault there.

    With `at` (e.g. the global step) the fault fires when n == at instead of the pass count,
    so a plan can name moments of the run that survive restarts.
    """
    global _plan
    if _plan is None:
        _plan = _parse()
    if not _plan:
        return
    _counts[point] = _counts.get(point, 0) + 1
    for where, n, action in _plan:
        if where != point:
            continue
        count = _counts[point] if at is None else at
        if n == 0 or (n == count and _claim(f"{point}:{n}:{action}")):
            _fire(action)


def _claim(key: str) -> bool:
    """True the first time a fault fires across attempts (when DINOWM_FAULT_ONCE is set)."""
    marker = os.environ.get("DINOWM_FAULT_ONCE")
    if not marker:
        return True
    path = Path(marker)
    fired = path.read_text().splitlines() if path.exists() else []
    if key in fired:
        return False
    with open(path, "a") as fh:
        fh.write(key + "\n")
    return True


# Actions that need a library only the trainer loads (torch's OOM error): registered by
# dinowm.train, so that this module, which the store uses too, stays torch-free.
ACTIONS: dict[str, Callable[[], None]] = {}


def _fire(action: str) -> None:
    if action in ACTIONS:
        ACTIONS[action]()
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device (injected by DINOWM_FAULT)")
    if action.startswith("sleep="):
        time.sleep(float(action.partition("=")[2]))
        return
    if action.startswith("gate="):  # wait there until the file exists
        gate = Path(action.partition("=")[2])
        while not gate.exists():
            time.sleep(0.05)
        return
    if action == "raise":
        raise RuntimeError("injected failure (DINOWM_FAULT)")
    if action == "hang":
        while True:
            time.sleep(3600)
    if action == "busy":
        while True:
            pass
    if action == "deadlock":
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()
    if action == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        return
    if action == "sigstop":
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    if action == "exit":
        os._exit(1)
    if action == "spam":
        line = "x" * 1023 + "\n"
        for _ in range(10 * 1024):
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    if action == "zombie":
        _children.append(subprocess.Popen([sys.executable, "-c", "pass"]))
        time.sleep(0.5)
        while True:
            time.sleep(3600)
    raise ValueError(f"unknown DINOWM_FAULT action {action!r}")

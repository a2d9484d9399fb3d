# SPDX-License-Identifier: MIT
"""Large exports on several cores: forked children render slices of the runs."""

from __future__ import annotations

import os
import pickle
import threading
import traceback
from collections.abc import Callable
from typing import TypeVar

from dinowm.errors import DinowmError

R = TypeVar("R")


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fork_map(fn: Callable[[int], R], count: int, workers: int) -> list[R]:
    """[fn(0), ..., fn(count - 1)], split into `workers` contiguous slices, this process included.

    The children are forked, so they see everything loaded here (nothing is sent to them);
    each sends its results back pickled through a pipe and exits without touching anything
    else this process holds (runs.db included). Without os.fork, for one worker, or when this
    process runs other threads (a lock one of them holds would stay locked in a child), fn runs
    here.
    """
    workers = max(1, min(workers, count))
    if workers == 1 or not hasattr(os, "fork") or threading.active_count() > 1:
        return [fn(i) for i in range(count)]
    bounds = [count * w // workers for w in range(workers + 1)]
    children: list[tuple[int, int]] = []
    try:
        for w in range(1, workers):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: computes its slice, writes it, exits
                os.close(read)
                _child(fn, range(bounds[w], bounds[w + 1]), write)
            os.close(write)
            children.append((pid, read))
        results = [fn(i) for i in range(bounds[0], bounds[1])]
    finally:
        parts = [_collect(pid, read) for pid, read in children]
    for part in parts:
        results.extend(part)
    return results


def _child(fn: Callable[[int], R], indices: range, write: int) -> None:
    code = 1
    try:
        data = pickle.dumps([fn(i) for i in indices], protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write, "wb") as out:
            out.write(data)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _collect(pid: int, read: int) -> list:
    """Read a child's results, then reap it; its failure is an error here."""
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        raise DinowmError(
            f"A worker process of the export (pid {pid}) failed; its traceback "
            f"is above. Nothing was written to the Markdown file."
        )
    return pickle.loads(data)

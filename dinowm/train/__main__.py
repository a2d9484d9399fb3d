# SPDX-License-Identifier: MIT
"""`python -m dinowm.train --run-dir DIR`: one trainer process of a run.

Exit codes: 0 completed or stopped, 2 configuration or data error (never retried),
3 CUDA out of memory, 4 disk full, 5 the run folder belongs to another supervisor or trainer
(nothing touched), 1 any other failure. Each failure but 5 is also an `error` event.
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import signal
import sys
import traceback
from pathlib import Path

from dinowm import rundir
from dinowm.faults import fault
from dinowm.rundir import LockHeld, hold_trainer

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_OOM, EXIT_DISK, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
_EXIT_OF = {"config": EXIT_CONFIG, "oom": EXIT_OOM, "disk_full": EXIT_DISK}


def _error_event(run_dir: Path, kind: str, message: str, **fields: object) -> None:
    """Best effort: the supervisor classifies from the exit code and train.log otherwise.

    Of several ranks, rank 0 alone writes events; every rank records its failure in its
    heartbeat file (phase "failed", error {kind, message, exit_code}).
    """
    rank = int(os.environ.get("RANK", "0"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        try:
            import time

            from dinowm.train.dist import write_heartbeat

            record = rundir.read_rank_heartbeats(run_dir).get(rank, {"rank": rank})
            record.update(
                pid=os.getpid(),
                phase="failed",
                t=time.time(),
                error={
                    "kind": kind,
                    "message": message[:2000],
                    "exit_code": _EXIT_OF.get(kind, EXIT_FAIL),
                },
            )
            record["failed_in"] = record.pop("collective", None)  # the collective, if in one
            write_heartbeat(rundir.rank_heartbeat(run_dir, rank), record)
        except OSError:
            pass
        if rank != 0:
            return
    try:
        from dinowm.events import EventWriter

        writer = EventWriter(run_dir / rundir.EVENTS)
        writer.emit("error", durable=True, kind=kind, message=message, **fields)
        writer.close()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dinowm.train",
        description="Run the trainer of one run folder (normally started by `dinowm run`).",
    )
    parser.add_argument(
        "--run-dir", required=True, type=Path, help="run folder holding config.json"
    )
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    # A file-size limit (ulimit -f) then gives EFBIG, reported as disk full, instead of a
    # silent SIGXFSZ death; DINOWM_FSIZE_LIMIT sets one for fault-injection tests.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if os.environ.get("DINOWM_FSIZE_LIMIT"):
        limit = int(os.environ["DINOWM_FSIZE_LIMIT"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    if not (run_dir / rundir.SPEC).is_file():
        print(
            f"error: {run_dir}/{rundir.SPEC} not found; create runs with 'dinowm run'.",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    rank = int(os.environ.get("RANK", "0"))  # set by torchrun when dist.nproc_per_node > 1
    if rank != 0:  # rank 0 alone writes train.log; the others keep their output apart
        _redirect_output(rundir.rank_log(run_dir, rank))
    try:  # before anything touches events or checkpoints; held until this process ends
        lock = hold_trainer(run_dir, rank)
    except LockHeld as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOCKED
    with lock:
        return _train(run_dir)


def _redirect_output(path: Path) -> None:
    """stdout and stderr of this process appended to path."""
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _train(run_dir: Path) -> int:
    """Train, turning each kind of failure into its exit code and `error` event."""
    fault("startup")  # before torch's import, while SIGTERM still ends the process at once
    import torch

    from dinowm.errors import DinowmError
    from dinowm.train.loop import train

    try:
        train(run_dir)
        return EXIT_OK
    except DinowmError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _error_event(run_dir, "config" if exc.exit_code == 2 else "exception", str(exc))
        return EXIT_CONFIG if exc.exit_code == 2 else EXIT_FAIL
    except torch.cuda.OutOfMemoryError as exc:
        traceback.print_exc()
        spec = rundir.read_spec(run_dir)["config"]["training"]
        peak = (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None
        _error_event(
            run_dir,
            "oom",
            str(exc).splitlines()[0],
            batch_size=spec["batch_size"],
            grad_accum=spec["grad_accum"],
            peak_gpu_mem_mib=peak,
            traceback=traceback.format_exc()[-4000:],
        )
        return EXIT_OOM
    except OSError as exc:
        traceback.print_exc()
        disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        _error_event(
            run_dir,
            "disk_full" if disk_full else "exception",
            str(exc),
            traceback=traceback.format_exc()[-4000:],
        )
        return EXIT_DISK if disk_full else EXIT_FAIL
    except Exception as exc:  # any other crash: recorded, then the supervisor's policy applies
        traceback.print_exc()
        _error_event(
            run_dir,
            "exception",
            f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-4000:],
        )
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: MIT
"""The run folder, our durable record: every file name in it, its locks, its small readers.

A run has at most one supervisor and one trainer. Each holds an exclusive lock on its lock file
for its whole life (dinowm.locks: the kernel releases it when the process dies, and the holder's
identity in the file is what a refused process quotes). This module is torch-free: the CLI, the
TUI and the trainer all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from dinowm.errors import DinowmError
from dinowm.locks import Holder as Holder  # the lock's names, where callers import them
from dinowm.locks import LockHeld, RunLock, holder
from dinowm.locks import read_holder as read_holder

# A run's status, as runs.db and the run folder's record.jsonl keep it.
ACTIVE = ("created", "pending", "running", "resuming", "stopping")  # pending: a Slurm job waits
FINAL = ("completed", "stopped", "failed", "lost", "cancelled")  # cancelled: by Slurm's scancel

SPEC = "config.json"
EVENTS = "events.jsonl"
LOG = "train.log"
LOG_FILE_ENV = "DINOWM_LOG_FILE"  # set for a Slurm job's trainer: it appends its log lines here
RECORD = "record.jsonl"
# On a cluster, the supervisor inside the Slurm job journals here (one writer per file: the
# login node's record.jsonl and the job's own never interleave on a network filesystem).
JOB_RECORD = "record.job.jsonl"
JOB_TELEMETRY = "telemetry.job.jsonl"  # its GPU samples, a few per minute, for the login node
STOP_REQUEST = "stop.request"  # `dinowm stop` of a run whose supervisor runs elsewhere
SLURM_SCRIPT = "slurm.sbatch"  # the batch script `dinowm run --slurm` submitted
SLURM_OUT = "slurm.out"  # the batch job's own output (every allocation appends)
SUPERVISOR_LOG = "supervisor.log"
CONTROL = "control.json"
STACKS = "stacks.txt"
CHECKPOINTS = "checkpoints"
LATEST_CHECKPOINT = "model_latest.pth"  # in CHECKPOINTS, beside epoch_NNNN.pth; each + .json
SAMPLES = "samples"  # epoch_NNNN.png
SUPERVISOR_LOCK = "supervisor.lock"
RANKS = "ranks"  # per-rank output and heartbeats of a run on several GPUs
TRAINER_LOCK = "trainer.lock"
# `dinowm eval`: one JSON line per evaluated checkpoint (a re-evaluation appends; the last line
# of a checkpoint wins), and its pictures under eval/<checkpoint stem>/.
EVALUATIONS = "evaluations.jsonl"
EVAL_DIR = "eval"
EPOCH_CHECKPOINT = "epoch_{epoch:04d}.pth"  # in CHECKPOINTS, each with its manifest + .json
EPOCH_CHECKPOINTS = "epoch_*.pth"  # every epoch checkpoint; sorted by name = by epoch
SAMPLE = "epoch_{epoch:04d}.png"  # in SAMPLES: an epoch's reconstruction grid
GOAL_PICTURE = "goal_{goal:02d}.png"  # in eval/<checkpoint>/: start | goal | planned frames
HORIZON_PLOT = "horizon.svg"  # in eval/<checkpoint>/: the error against the horizon

# The public DINO-WM planner's model folder, <ckpt_base_path>/outputs/<model_name>/, which
# `dinowm export-checkpoint` writes: hydra.yaml, and CHECKPOINTS/model_<epoch>.pth beside
# LATEST_CHECKPOINT (our run folder took its checkpoint names from it).
PLANNER_OUTPUTS = "outputs"
PLANNER_CONFIG = "hydra.yaml"

TAIL_BLOCK = 64 * 1024
MAX_TAIL_BYTES = 1024 * 1024


def supervisor_lock(run_dir: Path) -> Path:
    """The lock file a run's supervisor holds for its whole life."""
    return Path(run_dir) / SUPERVISOR_LOCK


def trainer_lock(run_dir: Path, rank: int = 0) -> Path:
    """The lock file a run's trainer (one per rank) holds before it touches anything."""
    return Path(run_dir) / (TRAINER_LOCK if rank == 0 else f"trainer.rank{rank}.lock")


def rank_stacks(run_dir: Path, rank: int) -> Path:
    """Where a rank dumps its Python stacks on SIGUSR1 (rank 0: the run's stacks.txt)."""
    return Path(run_dir) / (STACKS if rank == 0 else f"{RANKS}/rank{rank}.stacks.txt")


def nccl_trace_prefix(run_dir: Path) -> Path:
    """Where NCCL's flight recorder writes on a collective timeout (it appends the rank)."""
    return Path(run_dir) / RANKS / "nccl_trace_rank_"


def rank_log(run_dir: Path, rank: int) -> Path:
    """Where a rank other than 0 writes its output (rank 0 writes train.log)."""
    return Path(run_dir) / RANKS / f"rank{rank}.log"


def rank_heartbeat(run_dir: Path, rank: int) -> Path:
    """Rank N's heartbeat file of a run on several ranks (each rank rewrites it atomically).

    One JSON object: rank, pid, world, step, epoch, phase, t (unix time); `collective` (a name)
    while the rank is inside a collective the trainer calls; phase "failed" with `error`
    {kind, message, exit_code} when the rank's trainer ended on an error.
    """
    return Path(run_dir) / RANKS / f"rank{rank}.json"


def read_rank_heartbeats(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Every rank's last heartbeat by rank ({} for a one-process run); unreadable files skipped."""
    beats: dict[int, dict[str, Any]] = {}
    for path in (Path(run_dir) / RANKS).glob("rank*.json"):
        match = re.fullmatch(r"rank(\d+)\.json", path.name)
        if not match:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            beats[int(match.group(1))] = data
    return dict(sorted(beats.items()))


def claim(run_dir: Path, run_id: str) -> RunLock:
    """The run's supervisor lock, or a one-line refusal naming the live supervisor."""
    try:
        return RunLock.acquire(supervisor_lock(run_dir))
    except LockHeld as exc:
        raise LockHeld(
            f"Run {run_id} is already supervised by {exc.holder.describe()}; "
            f"'dinowm stop {run_id}' stops it, 'dinowm tail {run_id} -f' follows "
            f"it.",
            exc.holder,
        ) from None


def _ancestors(pid: int, depth: int = 4) -> list[int]:
    """pid's parent, grandparent, ... (a rank's parent is torchrun, whose parent supervises)."""
    chain = []
    for _ in range(depth):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            break
        chain.append(pid)
    return chain


def hold_trainer(run_dir: Path, rank: int = 0, pid: int | None = None) -> RunLock:
    """The trainer's lock (one per rank), taken before it touches checkpoints or events.

    A trainer runs only under its own supervisor (the supervisor lock's holder is its parent,
    or torchrun's parent; in a Slurm job, the supervisor of the same job, whose `srun` starts
    the trainer under slurmstepd) or in a folder no supervisor holds (started by hand); a
    second trainer is refused either way.
    """
    sup = holder(supervisor_lock(run_dir))
    mine = _ancestors(pid or os.getpid())
    same_job = sup is not None and sup.job is not None and sup.job == os.environ.get("SLURM_JOB_ID")
    if (
        sup is not None
        and not same_job
        and (sup.pid not in mine or sup.host != socket.gethostname())
    ):
        raise LockHeld(
            f"Run folder {run_dir} is supervised by {sup.describe()}; a second "
            f"trainer would train the run twice. Follow it with 'dinowm tail', or "
            f"'dinowm stop' it first.",
            sup,
        )
    try:
        return RunLock.acquire(trainer_lock(run_dir, rank), role="trainer")
    except LockHeld as exc:
        raise LockHeld(
            f"Run folder {run_dir} already has a trainer ({exc.holder.describe()}); "
            f"a second one would train the run twice.",
            exc.holder,
        ) from None


def last_lines(
    path: Path, n: int, block: int = TAIL_BLOCK, max_bytes: int = MAX_TAIL_BYTES
) -> list[str]:
    """The last n lines of a text file, read backwards in blocks (at most max_bytes of it)."""
    if n <= 0:
        return []
    chunks: list[bytes] = []
    with open(path, "rb") as fh:
        end = pos = fh.seek(0, os.SEEK_END)
        breaks = 0
        while pos > 0 and breaks <= n and end - pos < max_bytes:
            size = min(block, pos)
            pos -= size
            fh.seek(pos)
            chunks.append(fh.read(size))
            breaks += chunks[-1].count(b"\n")
    lines = b"".join(reversed(chunks)).decode("utf-8", "replace").splitlines()
    if pos > 0 and lines:
        lines[0] = "…" + lines[0]  # the file goes on before: this line is cut
    return lines[-n:]


def log_tail(run_dir: Path, n: int) -> list[str]:
    """The last n lines of the run's train.log ([] while there is none)."""
    try:
        return last_lines(Path(run_dir) / LOG, n)
    except FileNotFoundError:
        return []


def write_spec(run_dir: Path, spec: dict[str, Any]) -> None:
    """config.json, atomically (the trainer reads it at every start)."""
    tmp = Path(run_dir) / f".{SPEC}.tmp"
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True))
    os.replace(tmp, Path(run_dir) / SPEC)


def read_spec(run_dir: Path) -> dict[str, Any]:
    """The run's config.json: run id, name, preset, overrides, the resolved config."""
    try:
        return json.loads((Path(run_dir) / SPEC).read_text())
    except (OSError, ValueError) as exc:
        raise DinowmError(
            f"{run_dir}/{SPEC} cannot be read ({exc}); the run folder is damaged."
        ) from None


def planner_checkpoint(model_dir: Path, epoch: int | str) -> Path:
    """model_<epoch>.pth (or model_latest.pth for "latest") of a public planner's model folder."""
    name = LATEST_CHECKPOINT if epoch == "latest" else f"model_{epoch}.pth"
    return Path(model_dir) / CHECKPOINTS / name


def sample_path(run_dir: Path, epoch: int) -> Path:
    """The reconstruction grid of an epoch."""
    return Path(run_dir) / SAMPLES / SAMPLE.format(epoch=epoch)


def epoch_checkpoint(epoch: int) -> str:
    """The file name of an epoch's checkpoint in CHECKPOINTS."""
    return EPOCH_CHECKPOINT.format(epoch=epoch)


def epoch_checkpoints(folder: Path) -> list[Path]:
    """The epoch checkpoints in a CHECKPOINTS folder, oldest first."""
    return sorted(Path(folder).glob(EPOCH_CHECKPOINTS), key=lambda p: p.name)


def goal_picture(goal: int) -> str:
    """The file name of an evaluated goal's picture in its checkpoint's eval folder."""
    return GOAL_PICTURE.format(goal=goal)


def eval_dir(run_dir: Path, checkpoint: str) -> Path:
    """Where the evaluation of a checkpoint keeps its pictures: eval/epoch_0002/."""
    return Path(run_dir) / EVAL_DIR / Path(checkpoint).stem


def append_durably(path: Path, item: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsynced; a line left torn by a crash is ended first,
    so it cannot swallow this one (evaluations.jsonl, the queue's journal)."""
    line = json.dumps(item, sort_keys=True, default=str).encode() + b"\n"
    with open(path, "ab+") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = b"\n" + line
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def append_evaluation(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one evaluation record to evaluations.jsonl, durably."""
    append_durably(Path(run_dir) / EVALUATIONS, record)


def read_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The run folder's evaluation records in file order; a torn or garbled line, or one
    without a checkpoint, is skipped."""
    items, _ = read_jsonl(Path(run_dir) / EVALUATIONS, 0)
    return [item for item in items if isinstance(item.get("checkpoint"), str)]


def committed_checkpoints(run_dir: Path) -> list[dict[str, Any]]:
    """Checkpoint files of a run folder whose manifest (the commit marker) matches their size."""
    rows = []
    for manifest in sorted((Path(run_dir) / CHECKPOINTS).glob("*.pth.json")):
        data_file = manifest.with_suffix("")
        try:
            meta = json.loads(manifest.read_text())
            if data_file.stat().st_size != meta.get("size"):
                continue
        except (OSError, ValueError):
            continue
        rows.append(
            {
                "path": str(data_file),
                "epoch": meta.get("epoch"),
                "kind": "latest" if data_file.name == LATEST_CHECKPOINT else "epoch",
                "step": meta.get("step"),
                "sha256": meta.get("sha256"),
                "size": meta.get("size"),
                "t": meta.get("time"),
            }
        )
    return rows


def request_stop(run_dir: Path) -> None:
    """Ask the run's supervisor, wherever it runs, to stop gracefully (it polls this file)."""
    (Path(run_dir) / STOP_REQUEST).write_text(
        json.dumps({"t": time.time(), "host": socket.gethostname()})
    )


def stop_requested(run_dir: Path) -> bool:
    """True while a stop request file waits in the run folder."""
    return (Path(run_dir) / STOP_REQUEST).exists()


def clear_stop_request(run_dir: Path) -> None:
    """A resume starts without the previous stop request."""
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / STOP_REQUEST).unlink()


def record_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The run's journal (record.jsonl and, for a cluster run, record.job.jsonl) in time order;
    a torn or garbled line is skipped."""
    items = []
    for name in (RECORD, JOB_RECORD):
        items += read_jsonl(Path(run_dir) / name, 0)[0]
    return sorted(items, key=lambda item: item.get("t") or 0.0)


def read_jsonl(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """JSON objects of complete lines after byte `offset`, and the offset after the last one
    (a line still being written is left for the next read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out, offset + end


# -- the evaluation process's own files, in EVAL_DIR ------------------------------------------

EVAL_EVENTS = "events.jsonl"  # the evaluation process's progress, results and end
EVAL_LOG = "eval.log"  # its output
EVAL_LOCK = "eval.lock"  # held by the one process supervising an evaluation of the run
EVAL_STACKS = "stacks.txt"  # its Python stacks on SIGUSR1


def eval_path(run_dir: Path, name: str) -> Path:
    """A file of the run's evaluation folder (the folder itself for name "")."""
    return Path(run_dir) / EVAL_DIR / name if name else Path(run_dir) / EVAL_DIR


# -- the project's feature cache, beside the run folders -----------------------------------------

FEATURE_CACHE = ".feature_cache"  # the frozen encoder's tokens, shared by the project's runs


def feature_cache(run_dir: Path) -> Path:
    """The feature cache of the project a run folder belongs to (outputs/.feature_cache)."""
    return Path(run_dir).parent / FEATURE_CACHE

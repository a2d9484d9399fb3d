"""The run folder, our durable record: every file name in it, its locks, its small readers.

A run has at most one supervisor and one trainer. Each holds an exclusive `flock` on its lock
file for its whole life; the kernel releases it when the process dies, so a crash never leaves a
stale lock. The holder writes who it is (pid, host, since when) into the file, which a refused
process quotes. This module is torch-free: the CLI, the TUI and the trainer all use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm.errors import DinowmError

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

# The public DINO-WM planner's model folder, <ckpt_base_path>/outputs/<model_name>/, which
# `dinowm export-checkpoint` writes: hydra.yaml, and CHECKPOINTS/model_<epoch>.pth beside
# LATEST_CHECKPOINT (our run folder took its checkpoint names from it).
PLANNER_OUTPUTS = "outputs"
PLANNER_CONFIG = "hydra.yaml"

TAIL_BLOCK = 64 * 1024
MAX_TAIL_BYTES = 1024 * 1024

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
        since = f" (since {time.strftime('%H:%M:%S', time.localtime(self.since))})" \
            if self.since else ""
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
            raise DinowmError(f"descriptor {fd} is not the lock file {path}; start the "
                              f"supervisor through 'dinowm run' or 'dinowm resume'.")
        try:  # already ours through the shared open file description; this only confirms it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LockHeld(f"{path} is not held by descriptor {fd}",
                           read_holder(path, role)) from None
        os.set_inheritable(fd, False)
        lock = cls(path, fd)
        lock.record(os.getpid(), role)
        return lock

    def record(self, pid: int, role: str = "supervisor") -> None:
        """Write the holder's identity into the lock file (a child that takes it over too)."""
        assert self.fd is not None
        data = json.dumps({"pid": pid, "host": socket.gethostname(), "since": time.time(),
                           "role": role, "job": os.environ.get("SLURM_JOB_ID")}).encode()
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
            return Holder(data.get("pid"), data.get("host"), data.get("since"),
                          data.get("role", role), data.get("job"))
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
        raise LockHeld(f"Run {run_id} is already supervised by {exc.holder.describe()}; "
                       f"'dinowm stop {run_id}' stops it, 'dinowm tail {run_id} -f' follows "
                       f"it.", exc.holder) from None


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
    same_job = sup is not None and sup.job is not None and \
        sup.job == os.environ.get("SLURM_JOB_ID")
    if sup is not None and not same_job and \
            (sup.pid not in mine or sup.host != socket.gethostname()):
        raise LockHeld(f"Run folder {run_dir} is supervised by {sup.describe()}; a second "
                       f"trainer would train the run twice. Follow it with 'dinowm tail', or "
                       f"'dinowm stop' it first.", sup)
    try:
        return RunLock.acquire(trainer_lock(run_dir, rank), role="trainer")
    except LockHeld as exc:
        raise LockHeld(f"Run folder {run_dir} already has a trainer ({exc.holder.describe()}); "
                       f"a second one would train the run twice.", exc.holder) from None


def last_lines(path: Path, n: int, block: int = TAIL_BLOCK,
               max_bytes: int = MAX_TAIL_BYTES) -> list[str]:
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
        raise DinowmError(f"{run_dir}/{SPEC} cannot be read ({exc}); the run folder "
                          f"is damaged.") from None


def planner_checkpoint(model_dir: Path, epoch: int | str) -> Path:
    """model_<epoch>.pth (or model_latest.pth for "latest") of a public planner's model folder."""
    name = LATEST_CHECKPOINT if epoch == "latest" else f"model_{epoch}.pth"
    return Path(model_dir) / CHECKPOINTS / name


def sample_path(run_dir: Path, epoch: int) -> Path:
    """The reconstruction grid of an epoch."""
    return Path(run_dir) / SAMPLES / f"epoch_{epoch:04d}.png"


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
        rows.append({"path": str(data_file), "epoch": meta.get("epoch"),
                     "kind": "latest" if data_file.name == LATEST_CHECKPOINT else "epoch",
                     "step": meta.get("step"), "sha256": meta.get("sha256"),
                     "size": meta.get("size"), "t": meta.get("time")})
    return rows


def request_stop(run_dir: Path) -> None:
    """Ask the run's supervisor, wherever it runs, to stop gracefully (it polls this file)."""
    (Path(run_dir) / STOP_REQUEST).write_text(json.dumps({"t": time.time(),
                                                           "host": socket.gethostname()}))


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

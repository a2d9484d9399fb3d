# SPDX-License-Identifier: MIT
"""Several ranks of one run under torchrun: the process group, exact sums, the rank's heartbeat.

One process (WORLD_SIZE unset or 1) gets a Dist whose collectives are the identity and which
writes no file: the single-GPU trainer is untouched. With WORLD_SIZE > 1 (torchrun sets RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) the process group is NCCL on
cuda:LOCAL_RANK, or gloo on the CPU without CUDA, with dist.timeout_s as the collective
timeout. Each rank writes ranks/rank{N}.json (rundir.rank_heartbeat) at least once per step
and, around every collective called here, names it, so that a stall shows which rank waits
where.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as td
from torch import nn

from dinowm import rundir


def write_heartbeat(path: Path, record: dict[str, Any]) -> None:
    """One rank's heartbeat file, atomically (a reader never sees half of it)."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


class RankBeat:
    """ranks/rank{N}.json: rank, pid, world, host, step, epoch, phase, t, and the collective
    it is in."""

    def __init__(self, run_dir: Path, rank: int, world: int) -> None:
        self.path = rundir.rank_heartbeat(run_dir, rank)
        self.record: dict[str, Any] = {
            "rank": rank,
            "pid": os.getpid(),
            "world": world,
            "host": socket.gethostname(),
            "step": None,
            "epoch": None,
            "phase": "startup",
        }

    def beat(self, **fields: Any) -> None:
        """Update some of step, epoch, phase and write the file (collective cleared)."""
        self.record.update(fields)
        self.record.pop("collective", None)
        self._write()

    def _write(self, **extra: Any) -> None:
        write_heartbeat(self.path, {**self.record, "t": time.time(), **extra})

    @contextlib.contextmanager
    def collective(self, name: str) -> Iterator[None]:
        """Around a collective: the file names it while this rank is inside."""
        self._write(collective=name)
        yield
        self._write()


class Dist:
    """This process's rank in the run (rank 0 of 1 without torchrun)."""

    def __init__(
        self,
        rank: int = 0,
        world: int = 1,
        local_rank: int = 0,
        device: torch.device | None = None,
        beat: RankBeat | None = None,
    ) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.device = device  # None: the single process picks its device as it always did
        self.beat = beat

    @property
    def enabled(self) -> bool:
        """More than one rank: collectives are real."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the one writer of events, checkpoints, samples and train.log."""
        return self.rank == 0

    # -- heartbeat -------------------------------------------------------------------------

    def heartbeat(self, **fields: Any) -> None:
        """The rank's heartbeat file (step, epoch, phase); nothing with one rank."""
        if self.beat is not None:
            self.beat.beat(**fields)

    def collective(self, name: str) -> contextlib.AbstractContextManager:
        """Around a collective called elsewhere (DDP's gradient all-reduce): named in the file."""
        return self.beat.collective(name) if self.beat is not None else contextlib.nullcontext()

    # -- collectives (the identity with one rank) -------------------------------------------

    def sum(self, values: list[float], name: str) -> list[float]:
        """Element-wise sums over ranks, in float64 (counts stay exact up to 2**53)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        with self.collective(name):
            td.all_reduce(t, op=td.ReduceOp.SUM)
        return t.tolist()

    def any(self, flags: list[bool], name: str) -> list[bool]:
        """Element-wise OR over ranks (a stop or a pause one rank saw applies to all)."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=self._comm_device())
        with self.collective(name):
            td.all_reduce(t, op=td.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def all_gather_object(self, obj: Any, name: str) -> list[Any]:
        """Every rank's `obj`, by rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        with self.collective(name):
            td.all_gather_object(out, obj)
        return out

    def gather_object(self, obj: Any, name: str) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (by rank), None on the others."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        with self.collective(name):
            td.gather_object(obj, out, dst=0)
        return out

    def barrier(self, name: str) -> None:
        """Wait for every rank."""
        if self.enabled:
            with self.collective(name):
                td.barrier()

    def check_same(self, what: str, value: Any) -> None:
        """RuntimeError unless every rank has the same `value` (cheap facts, once at startup)."""
        values = self.all_gather_object(value, name=f"check_{what}")
        if any(v != values[0] for v in values):
            raise RuntimeError(f"ranks disagree on {what}: {values}")

    def _comm_device(self) -> torch.device:
        return (
            self.device
            if self.device is not None and self.device.type == "cuda"
            else torch.device("cpu")
        )

    # -- the model ---------------------------------------------------------------------------

    def wrap(self, model: nn.Module, unused_parameters: bool = False) -> nn.Module:
        """DistributedDataParallel over the model (only parameters that train are reduced);
        the model itself with one rank."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # Every trained parameter gets a gradient from every forward (loss = z_loss +
        # recon_loss reaches predictor, both embeddings and decoder; decode_pred only adds
        # no-grad metrics), so find_unused_parameters stays off, unless some steps leave the
        # decoder out (unused_parameters: training.decoder_every > 1). No buffers.
        cuda = self.device is not None and self.device.type == "cuda"
        return DistributedDataParallel(
            model,
            device_ids=[self.local_rank] if cuda else None,
            find_unused_parameters=unused_parameters,
        )

    def close(self) -> None:
        """Leave the process group (after the last collective)."""
        if self.enabled and td.is_initialized():
            td.destroy_process_group()


def from_env(run_dir: Path, timeout_s: float) -> Dist:
    """This process's Dist: one rank without torchrun, else join the group torchrun set up."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    beat = RankBeat(run_dir, rank, world)
    beat.beat(phase="startup")
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:  # N gloo ranks on this machine's CPUs: share the cores instead of oversubscribing
        device = torch.device("cpu")
        backend = "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    with beat.collective("init_process_group"):
        td.init_process_group(
            backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
        )
    return Dist(rank, world, local_rank, device, beat)

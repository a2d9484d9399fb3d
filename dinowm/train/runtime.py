# SPDX-License-Identifier: MIT
"""What the loop needs around it: its process (signals, the stop and the thermal pause),
loaders, events and the readable log."""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dinowm import rundir
from dinowm.events import EventWriter
from dinowm.train import dist
from dinowm.train.device import (
    Prefetcher,
    autocast,
    batch_to_device,
    cuda_settings,
    memory_cap_from_env,
    tokens_to_device,
)

LOG_EVERY_S = 10.0


# A stop signal this soon after the first is a copy of it (Slurm, srun and torchrun each
# deliver one), not a second request.
DUPLICATE_SIGNAL_S = 1.0


class Runtime:
    """One trainer process of a run: reads config.json, writes events.jsonl and the log.

    Of several ranks (torchrun), rank 0 alone writes events and log lines about the run; every
    rank writes its heartbeat file (dist.RankBeat).
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.spec = rundir.read_spec(self.run_dir)
        self.run_id: str = self.spec["run_id"]
        self.attempt = int(os.environ.get("DINOWM_ATTEMPT", "1"))
        self.dist = dist.from_env(self.run_dir, float(self.spec["config"]["dist"]["timeout_s"]))
        self.main = self.dist.is_main
        # Only rank 0 opens events.jsonl (opening it may cut a torn last line).
        self.events = EventWriter(self.run_dir / rundir.EVENTS) if self.main else _NoEvents()
        self.device = self.dist.device or torch.device(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        self.stop_requested = False
        self._pause_agreed = False
        # stacks.txt is rank 0's; another rank dumps into ranks/rankN.stacks.txt
        self._stacks = open(rundir.rank_stacks(self.run_dir, self.dist.rank), "a")  # noqa: SIM115
        self._last_log = 0.0
        log_file = os.environ.get(rundir.LOG_FILE_ENV)
        self._log_fd = (
            os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            if log_file and self.main
            else None
        )
        self.memory_cap_gib = memory_cap_from_env(self.device, self.log)  # a smaller GPU, emulated
        self._step_times: list[float] = []
        self._install_signals()
        cfg = self.spec["config"]["training"]
        if cfg.get("deterministic"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if self.device.type == "cuda":
            cuda_settings(bool(cfg.get("deterministic")))

    # -- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        """SIGTERM/SIGINT: stop after this step (a second one exits at once); SIGUSR1: stacks.

        Copies of one stop arriving together count once: in a Slurm job, slurmstepd signals
        every process of the step while srun and torchrun forward the same signal.
        """
        faulthandler.register(signal.SIGUSR1, file=self._stacks, all_threads=True, chain=False)
        first: list[float] = []

        def on_term(signum: int, frame: Any) -> None:
            if self.stop_requested:
                if time.monotonic() - first[0] < DUPLICATE_SIGNAL_S:
                    return
                self.log(f"second {signal.Signals(signum).name}: exiting now")
                os._exit(130)
            first.append(time.monotonic())
            self.stop_requested = True
            self.log(
                f"{signal.Signals(signum).name}: finishing this step, then checkpoint and stop"
            )

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    # -- tensors ---------------------------------------------------------------------------

    def loader(
        self, dataset: Any, batch_size: int = 1, sampler: Any = None, batch_sampler: Any = None
    ) -> DataLoader:
        """A DataLoader that keeps uint8 frames until the device; workers persist.

        `batch_sampler` (lists of indices) replaces batch_size and sampler. The loader gets its
        own generator: iter() of a loader otherwise draws a seed from the global RNG, and a
        mid-epoch resume would then diverge from the uninterrupted run.
        """
        workers = int(self.spec["config"]["data"]["num_workers"])
        batching: dict[str, Any] = (
            {"batch_sampler": batch_sampler}
            if batch_sampler is not None
            else {
                "batch_size": batch_size,
                "sampler": sampler,
                "shuffle": False,
                "drop_last": False,
            }
        )
        return DataLoader(
            dataset,
            **batching,
            generator=torch.Generator().manual_seed(0),
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
        )

    def to_device(
        self, batch: dict[str, torch.Tensor], img_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 frames → float [-1, 1] at img_size on the device; proprio and action."""
        return batch_to_device(batch, self.device, img_size)

    def batches(self, loader: DataLoader, prefetch: bool) -> Iterator[dict[str, torch.Tensor]]:
        """The loader's batches; on CUDA with perf.prefetch, each already on its way to the
        GPU while the step before computes (Prefetcher)."""
        it = iter(loader)
        return Prefetcher(it, self.device) if prefetch and self.device.type == "cuda" else it

    def tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Cached encoder tokens of the batch (B, F, P, D), when the feature cache is on."""
        return tokens_to_device(batch, self.device)

    def autocast(self, precision: str) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA when asked; fp32 everywhere else."""
        return autocast(self.device, precision)

    # -- events and log ----------------------------------------------------------------------

    def log(self, message: str) -> None:
        """A line of the human-readable log: stdout, which the supervisor sends to train.log,
        or, in a Slurm job (DINOWM_LOG_FILE), appended to that file in one write, so that no
        line waits in srun's forwarding when the node dies."""
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        if self._log_fd is None:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            os.write(self._log_fd, line.encode())

    def phase(self, phase: str, epoch: int | None) -> None:
        """Announce a phase so the watchdog applies that phase's budget."""
        self.dist.heartbeat(phase=phase, epoch=epoch)
        self.events.emit("phase", phase=phase, epoch=epoch)

    def start(self, attempt_epoch: int, **fields: Any) -> None:
        """The attempt's first event: what it runs with, and where it resumes."""
        if not self.main:
            return
        if self.dist.enabled:
            fields["world_size"] = self.dist.world
        self.events.emit(
            "start",
            durable=True,
            attempt=self.attempt,
            pid=os.getpid(),
            epoch=attempt_epoch,
            device=str(self.device),
            torch=torch.__version__,
            python=sys.version.split()[0],
            **fields,
        )
        what = (
            f"resuming from {fields['resumed_from']}" if fields.get("resumed_from") else "starting"
        )
        self.log(
            f"run {self.run_id} attempt {self.attempt}: {what} at epoch {attempt_epoch}, "
            f"{fields['batches_per_epoch']} batches/epoch of {fields['batch_size']} "
            f"(micro-batch {fields['micro_batch']}), device {self.device}, "
            f"encoder {fields['encoder_label']}, statistics from "
            f"{fields['stats_from']}, {fields['shuffle']} order, "
            + (
                "no decoder (model.decoder=off: no reconstructions or image metrics)"
                if not fields.get("decoder", True)
                else f"decoder trained every {fields.get('decoder_every', 1)} step(s)"
            )
        )

    def heartbeat(
        self,
        *,
        epoch: int,
        batch: int,
        batches: int,
        step: int,
        loss: float,
        step_s: float,
        samples: int,
        remaining: int,
    ) -> None:
        """One event per optimiser step, written by the loop itself (never by a timer)."""
        self.dist.heartbeat(step=step, epoch=epoch)
        if not self.main:
            return
        self._step_times = [*self._step_times, step_s][-50:]
        mean = sum(self._step_times) / len(self._step_times)
        self.events.emit(
            "heartbeat",
            epoch=epoch,
            batch=batch,
            batches=batches,
            step=step,
            loss=loss,
            step_s=step_s,
            samples_per_s=samples / max(step_s, 1e-9),
            eta_s=mean * remaining,
        )
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S or batch == batches:
            self._last_log = now
            self.log(
                f"epoch {epoch} batch {batch}/{batches} step {step} loss {loss:.5f} "
                f"{samples / max(step_s, 1e-9):.1f} samples/s eta {mean * remaining:.0f}s"
            )

    def beat_validation(self, batch: int) -> None:
        """Validation progress (the watchdog's validation budget counts from the phase event)."""
        self.dist.heartbeat()
        if batch % 20 == 0:
            self.events.emit("heartbeat", phase="validation", batch=batch)

    def emit_epoch(
        self,
        *,
        epoch: int,
        metrics: dict[str, Any],
        started_at: float,
        ended_at: float,
        steps: int,
        samples: int,
        train_seconds: float,
        batch_size: int,
        resumed_at_step: int,
    ) -> None:
        """The epoch's record: losses, z_err_pred, timing, memory."""
        if not self.main:
            return
        peak = None
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        fields = {
            "train_loss": metrics.get("train_loss"),
            "val_loss": metrics.get("val_loss"),
            "z_err_pred": metrics.get("val_z_visual_err_pred"),
            "duration_s": ended_at - started_at,
            "steps": steps,
            "batch_size": batch_size,
            "samples_per_s": samples / max(train_seconds, 1e-9),
            "peak_gpu_mem_mib": peak,
            "started_at": started_at,
            "ended_at": ended_at,
            "attempt": self.attempt,
            "resumed_at_step": resumed_at_step,
        }
        self.events.emit("epoch", durable=True, epoch=epoch, metrics=metrics, **fields)
        self.log(
            f"epoch {epoch} done: train_loss {_f(fields['train_loss'])} val_loss "
            f"{_f(fields['val_loss'])} z_err_pred {_f(fields['z_err_pred'])} in "
            f"{fields['duration_s']:.1f}s"
        )

    def checkpoint(self, **fields: Any) -> None:
        """A committed checkpoint: its path, kind, epoch, step, sha256 and size."""
        if not self.main:
            return
        self.events.emit("checkpoint", durable=True, **fields)
        self.log(f"checkpoint {fields['path']} ({fields['size'] / 2**20:.1f} MiB)")

    def incident(self, kind: str, summary: str, **details: Any) -> None:
        """Something the run survived, for the run's history."""
        if not self.main:
            return
        self.events.emit("incident", durable=True, kind=kind, summary=summary, details=details)
        self.log(f"{kind}: {summary}")

    def end(self, status: str, epoch: int, step: int) -> None:
        """The attempt's last event: completed or stopped."""
        self.dist.heartbeat(phase=status, step=step)
        if not self.main:
            return
        self.events.emit("end", durable=True, status=status, epoch=epoch, step=step)
        self.log(f"run {status} at epoch {epoch}, step {step}")

    def error(self, kind: str, message: str, **fields: Any) -> None:
        """A failure that ends the attempt."""
        self.events.emit("error", durable=True, kind=kind, message=message, **fields)

    # -- stop and thermal pause ---------------------------------------------------------------

    def stop_now(self) -> bool:
        """Stop here? One rank: a SIGTERM arrived. Several: any rank's SIGTERM, agreed by all
        (with whether any rank sees the pause file, for wait_while_paused)."""
        if not self.dist.enabled:
            return self.stop_requested
        control = (self.run_dir / rundir.CONTROL).exists()
        stop, self._pause_agreed = self.dist.any([self.stop_requested, control], "stop_flags")
        return stop

    def wait_while_paused(self) -> None:
        """Hold between steps while the supervisor's control file asks for a pause.

        Several ranks enter it together (agreed in stop_now) and each leaves when the file is
        gone or a stop arrives; no rank waits inside a collective meanwhile.
        """
        control = self.run_dir / rundir.CONTROL
        if self.dist.enabled:
            if not self._pause_agreed:
                return
            self._pause_agreed = False
            self.dist.heartbeat(phase="paused")
        elif not control.exists():
            return
        announced = 0.0
        while control.exists() and not self.stop_requested:
            if time.monotonic() - announced > 5:
                try:
                    reason = json.loads(control.read_text()).get("reason", "")
                except (OSError, ValueError):
                    reason = ""
                self.events.emit("phase", phase="paused", reason=reason)
                self.dist.heartbeat()
                announced = time.monotonic()
            time.sleep(0.5)
        self.dist.heartbeat(phase="train")
        self.events.emit("phase", phase="train")


class _NoEvents:
    """The events of a rank other than 0: none (rank 0 is the run's one writer)."""

    def emit(self, type: str, *, durable: bool = False, **fields: Any) -> dict[str, Any]:
        return {}


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"

# SPDX-License-Identifier: MIT
"""What the app takes from outside (project, clock, GPU source, launcher), injected for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dinowm.config import Project
from dinowm.rundir import RunLock
from dinowm.store import Store


class GpuSource(Protocol):
    """What the GPU strip samples: dinowm.supervise.telemetry.Sampler or a test double."""

    available: bool
    reason: str

    def sample(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def nvml_source() -> GpuSource:
    """NVML through dinowm.supervise.telemetry; opening it may block, so call this in a thread."""
    from dinowm.supervise.telemetry import Sampler

    return Sampler()


def spawn_supervisor(project: Project, run_id: str, lock: RunLock | None = None) -> int:
    """A detached supervisor that outlives the app (dinowm.supervise.supervisor.spawn_detached); a
    resume's held run lock passes to it."""
    from dinowm.supervise.supervisor import spawn_detached

    return spawn_detached(project, run_id, lock)


def spawn_queue_supervisor(project: Project) -> int:
    """The project's detached queue supervisor (dinowm.queue.runner.start_detached)."""
    from dinowm.queue.runner import start_detached

    return start_detached(project)


@dataclass(frozen=True)
class Services:
    """Dependencies of the app; build_app() fills in the real ones."""

    project: Project
    clock: Callable[[], float] = time.time
    gpu: Callable[[], GpuSource] | None = nvml_source
    spawn: Callable[..., int] = spawn_supervisor
    spawn_queue: Callable[[Project], int] = spawn_queue_supervisor
    poll_s: float = 2.0
    gpu_interval_s: float = 1.0
    log_poll_s: float = 0.25
    reconcile_every: int = 5
    initial_overrides: tuple[str, ...] = ()

    def store(self) -> Store:
        """A fresh connection to runs.db: open, read, close (never held across polls)."""
        return Store(self.project.runs_db)

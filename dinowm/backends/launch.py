# SPDX-License-Identifier: MIT
"""What a face asks of a backend when a run starts or resumes: the new run, and how."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dinowm.config import Project
from dinowm.rundir import RunLock

Say = Callable[[str], None]
# A supervisor on this machine for run_id, handed the run's held lock: in the foreground,
# detached, or the TUI's injected spawner (dinowm.supervise.supervisor.spawn_detached's shape).
Start = Callable[[Project, str, RunLock], object]


def quiet(text: str) -> None:
    """A Say that keeps its words (the TUI reports the returned row instead)."""


@dataclass(frozen=True)
class NewRun:
    """A new run as `dinowm run` or the TUI's launch form asks for it."""

    preset: str | None
    overrides: tuple[str, ...] = ()
    name: str | None = None
    note: str | None = None
    argv: list[str] | None = None  # the command as typed, kept in the run's record
    gpus: str | None = None  # `--gpus N|auto`: this machine's GPUs


@dataclass(frozen=True)
class Launch:
    """How a run starts or resumes: a supervisor here, where words go, the backend's options."""

    start: Start
    say: Say = quiet
    warn: Say | None = None
    # Slurm's options as flags: nodes, time, ... (a None value: [slurm] of dinowm.toml decides)
    flags: Mapping[str, Any] = field(default_factory=dict)
    by: str = "the user"  # who resumed it, for the run's incident

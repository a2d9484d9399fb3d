# SPDX-License-Identifier: MIT
"""Where a run runs: one Backend per place (this machine, Slurm), asked by every face.

The faces, the queue and the store never test where a run runs themselves: they ask
backend_of(run), or call the operations below, which pick the run's backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from dinowm.backends.launch import Launch, NewRun, Say, Start, quiet
from dinowm.backends.local import LocalBackend
from dinowm.backends.slurm import SlurmBackend
from dinowm.config import Project
from dinowm.errors import ConfigError
from dinowm.formats import plain_name
from dinowm.store import Store
from dinowm.store.reindex import reindex as rebuild_index

__all__ = [
    "Backend",
    "Launch",
    "NewRun",
    "Say",
    "Start",
    "backend_of",
    "by_name",
    "launch",
    "reconcile",
    "reindex",
    "resume",
    "stop",
]


class Backend(Protocol):
    """One place where runs run: how they start, resume, stop and are followed there."""

    name: str  # 'local', 'slurm': also the flag that asks for it (--local, --slurm)
    where: str  # 'this machine', 'Slurm'

    def owns(self, run: Mapping[str, Any]) -> bool:
        """Whether the run's row says it runs here."""

    def describe(self, run: Mapping[str, Any]) -> str:
        """The run's place in a sentence: 'a Slurm job (last job 12)'."""

    def launch(self, project: Project, new: NewRun, how: Launch) -> dict[str, Any]:
        """Check, write and start a new run; its row."""

    def resume(
        self,
        project: Project,
        run_id: str,
        overrides: tuple[str, ...] | list[str],
        how: Launch,
        forget: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Continue the run from its latest checkpoint, writing `forget` with its status."""

    def stop(self, store: Store, run: dict[str, Any], say: Say) -> dict[str, Any]:
        """Ask the active run to checkpoint and stop; its row."""

    def reconcile(self, store: Store) -> list[str]:
        """Bring this place's active runs up to date in runs.db; the ids it looked after."""

    def log_path(self, run: Mapping[str, Any]) -> Path:
        """The run's readable training log."""

    def occupies_here(self, run: Mapping[str, Any]) -> bool:
        """Whether the active run holds this machine's GPUs (the queue's gate)."""

    def placement(self, run: Mapping[str, Any]) -> str:
        """What to show of where it runs ('job 12 RUNNING on n1'); '' when nothing."""

    def release(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The row's fields that stop holding once the run resumes in another place; refused
        (rundir.LockHeld) while it still runs here."""

    def rebuilt(
        self, store: Store, run: dict[str, Any], events: list[dict[str, Any]], events_end: int
    ) -> None:
        """Settle a run `dinowm reindex` rebuilt from its folder (events read to events_end)."""


SLURM = SlurmBackend()
LOCAL = LocalBackend(claimed=SLURM.owns)
BACKENDS: tuple[Backend, ...] = (SLURM, LOCAL)  # the specific first, the default last


def backend_of(run: Mapping[str, Any]) -> Backend:
    """The backend of a runs row (or of a dict with its columns)."""
    return next(b for b in BACKENDS if b.owns(run))


def by_name(name: str) -> Backend:
    """The backend a flag names ('local', 'slurm')."""
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise ConfigError(
        f"Unknown backend {name!r}; use one of {', '.join(b.name for b in BACKENDS)}."
    )


def _takes_flags(backend: Backend, flags: Mapping[str, Any]) -> None:
    given = [k for k, v in flags.items() if v is not None]
    if given and backend is LOCAL:
        raise ConfigError(
            f"--{given[0].replace('_', '-')} is a Slurm option; add --slurm to "
            f"submit the run to Slurm."
        )


def reconcile(store: Store) -> list[str]:
    """Every backend brings its active runs up to date (cluster runs read on, runs whose
    supervisor died here marked lost); the ids each looked after."""
    return [run_id for backend in BACKENDS for run_id in backend.reconcile(store)]


def launch(project: Project, new: NewRun, how: Launch, where: str = "local") -> dict[str, Any]:
    """`dinowm run` and the TUI's launch: a new run on the backend `where` names."""
    plain_name(new.name)
    backend = by_name(where)
    _takes_flags(backend, how.flags)
    return backend.launch(project, new, how)


def resume(
    project: Project,
    ref: str,
    overrides: tuple[str, ...] | list[str],
    how: Launch,
    where: str | None = None,
) -> dict[str, Any]:
    """`dinowm resume` and the TUI's: RUN continues where it ran (a cluster run as a new job),
    or where `where` names, saying so in one line when that is another place."""
    with Store(project.runs_db) as store:
        reconcile(store)
        run = store.run(ref)
    own = backend_of(run)
    target = own if where is None else by_name(where)
    _takes_flags(target, how.flags)
    if target is own:
        return own.resume(project, run["id"], overrides, how, forget={})
    forget = own.release(run)
    how.say(
        f"run {run['id']} was {own.describe(run)}; training it on {target.where} because "
        f"of --{target.name}"
    )
    return target.resume(project, run["id"], overrides, how, forget=forget)


def stop(store: Store, ref: str, say: Say = quiet) -> dict[str, Any]:
    """`dinowm stop` and the TUI's: the run's backend asks it to checkpoint and stop."""
    reconcile(store)
    run = store.run(ref)
    return backend_of(run).stop(store, run, say)


def rebuilt(
    store: Store, run: dict[str, Any], events: list[dict[str, Any]], events_end: int
) -> None:
    """What reindex does with a rebuilt run: its backend's say (see Backend.rebuilt)."""
    backend_of(run).rebuilt(store, run, events, events_end)


def reindex(project: Project, force: bool = False) -> dict[str, Any]:
    """`dinowm reindex`: runs.db rebuilt from the run folders, each run settled by its backend."""
    return rebuild_index(project, force, settle=rebuilt)

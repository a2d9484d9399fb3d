# SPDX-License-Identifier: MIT
"""The blocking work behind the app's actions; called from thread workers, never the event loop."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm import backends
from dinowm.config import Project, flat_values, resolve
from dinowm.errors import ConfigError, DinowmError
from dinowm.runs import resolve_run
from tui.services import Services


@dataclass(frozen=True)
class Check:
    """Live validation of a new run: the CLI's error line, or what the overrides change."""

    ok: bool
    message: str
    changes: tuple[str, ...] = ()


def parse_overrides(text: str) -> list[str]:
    """'a=1 b="x y"' → ['a=1', 'b=x y'] as a shell would split them."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"Overrides {text!r} cannot be split ({exc}); close the quote.") from None


def check_launch(project: Project, preset: str | None, text: str) -> Check:
    """Resolve preset + overrides as `dinowm run` would, without writing anything."""
    try:
        overrides = parse_overrides(text)
        resolved = resolve_run(project, preset, overrides)
        base = flat_values(resolve(project, preset, ()).config)
    except DinowmError as exc:
        return Check(False, str(exc))
    new = flat_values(resolved.config)
    changes = tuple(f"{k}: {base[k]!r} → {new[k]!r}" for k in resolved.overridden())
    what = f"{len(changes)} key{'s' * (len(changes) != 1)} changed from preset {resolved.preset}"
    return Check(True, what, changes)


def launch(
    services: Services,
    preset: str | None,
    overrides: list[str],
    name: str | None,
    note: str | None,
    gpus: str = "",
) -> dict[str, Any]:
    """Validate (the dataset files too, in a child process: the app never imports torch),
    write the run folder and row, then start a detached supervisor."""
    # An empty GPU field keeps dist.nproc_per_node; N or auto is `dinowm run --gpus` (NVML is
    # asked here, in a worker).
    new = backends.NewRun(
        preset, tuple(overrides), name=name or None, note=note or None, gpus=gpus or None
    )
    return backends.launch(services.project, new, backends.Launch(start=services.spawn))


def stop(services: Services, run_id: str) -> dict[str, Any]:
    """Ask the run to stop gracefully, where it runs (a cluster run through Slurm)."""
    with services.store() as store:
        return backends.stop(store, run_id)


def resume(services: Services, run_id: str, overrides: list[str]) -> dict[str, Any]:
    """`dinowm resume RUN`, the same function: where the run ran (a detached supervisor here,
    a cluster run as a new Slurm job); refused with the CLI's one-line error while another
    supervisor or a live job holds it."""
    return backends.resume(
        services.project, run_id, overrides, backends.Launch(start=services.spawn)
    )


def add_note(services: Services, run_id: str, text: str) -> None:
    """A dated user note on a run."""
    with services.store() as store:
        store.add_note(run_id, text)


def edit_note(services: Services, note_id: int, text: str) -> None:
    """Replace a note's text."""
    with services.store() as store:
        store.update_note(note_id, text)


def export_log(services: Services, path: Path, run_ids: list[str]) -> Path:
    """The Markdown training log of run_ids (dinowm.export, as `dinowm export-log` writes it)."""
    from dinowm.export import export_log as write_log

    project = services.project
    target = path if path.is_absolute() else project.root / path
    with services.store() as store:
        return write_log(store, target, run_ids).path


def evaluate(services: Services, run_id: str, text: str) -> int:
    """`dinowm eval RUN OPTIONS` detached (its output in the run's eval/eval.log); its pid.
    The options are parsed and checked here first, as the CLI checks them, so a typo is
    refused in one line, not in a log."""
    from dinowm.evaluate.request import parse
    from dinowm.evaluate.watch import start_detached

    with services.store() as store:
        run_dir = Path(store.run(run_id)["run_dir"])
    evaluation = parse(text, run_dir)
    return start_detached(services.project, run_id, list(evaluation.argv)).pid


def stop_evaluation(services: Services, run_id: str) -> int | None:
    """SIGTERM to the run's running evaluation; its pid, None when none runs."""
    from dinowm.evaluate.watch import stop as stop_eval

    with services.store() as store:
        run_dir = Path(store.run(run_id)["run_dir"])
    return stop_eval(run_dir)


def enqueue(
    services: Services, preset: str | None, overrides: list[str], name: str | None
) -> dict[str, Any]:
    """Add a queue entry, checked as `dinowm queue add` checks it (the dataset in a child)."""
    from dinowm.queue.entries import add

    return add(services.project, preset, overrides, name or None)


def move_entry(services: Services, entry_id: int, where: str) -> list[int]:
    """Move a queued entry up or down."""
    from dinowm.queue.entries import move

    return move(services.project, entry_id, where)


def remove_entry(services: Services, entry_id: int) -> dict[str, Any]:
    """Remove a queue entry that is not running."""
    from dinowm.queue.entries import remove

    return remove(services.project, entry_id)


def pause_queue(services: Services, paused: bool) -> int | None:
    """Pause the queue, or unpause it and start its supervisor unless one runs (its pid)."""
    from dinowm.queue.entries import set_paused
    from dinowm.queue.runner import supervisor

    set_paused(services.project, paused)
    if paused or supervisor(services.project) is not None:
        return None
    return services.spawn_queue(services.project)

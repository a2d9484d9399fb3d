# SPDX-License-Identifier: MIT
"""The queue's entries as the CLI and the TUI change them: add (resolved and checked as `dinowm
run` does), sweep, remove, move, pause; each change in runs.db first, then in the journal."""

from __future__ import annotations

import json
import secrets
from typing import Any

from dinowm import rundir
from dinowm.config import Project, Resolved, config_hash, from_dict, to_dict
from dinowm.errors import ConfigError, DinowmError
from dinowm.formats import plain_name
from dinowm.queue import journal, sweep
from dinowm.runs import resolve_run
from dinowm.store import Store


def _checked(
    project: Project, preset: str | None, configurations: list[list[str]]
) -> list[Resolved]:
    """Every configuration resolved and its dataset checked (once per distinct dataset), or a
    one-line refusal naming the configuration; nothing is written."""
    from dinowm.trials import check_dataset_files

    resolved, checked = [], set()
    for i, overrides in enumerate(configurations, 1):
        try:
            item = resolve_run(project, preset, overrides)
            cfg = item.config
            data = (
                json.dumps(to_dict(cfg)["data"], sort_keys=True),
                cfg.frameskip,
                cfg.num_hist,
                cfg.num_pred,
            )
            if data not in checked:
                check_dataset_files(cfg)
                checked.add(data)
        except DinowmError as exc:
            if len(configurations) == 1:
                raise
            raise type(exc)(
                f"configuration {i} of {len(configurations)} ({' '.join(overrides)}): {exc}"
            ) from None
        resolved.append(item)
    return resolved


def _row(item: Resolved, name: str | None, sweep_id: str | None) -> dict[str, Any]:
    return {
        "preset": item.preset,
        "name": name,
        "overrides_json": json.dumps(list(item.overrides)),
        "config_json": json.dumps(to_dict(item.config)),
        "config_hash": config_hash(item.config),
        "changed_json": json.dumps(item.changed()),
        "sweep_id": sweep_id,
    }


def _queue(project: Project, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with Store(project.runs_db) as store:
        added = store.queue_add(rows)
    for entry in added:
        journal.append(
            project,
            "add",
            entry={
                k: entry[k]
                for k in (
                    "id",
                    "position",
                    "preset",
                    "name",
                    "overrides_json",
                    "config_json",
                    "config_hash",
                    "changed_json",
                    "sweep_id",
                    "added_at",
                )
            },
        )
    return added


def add(
    project: Project,
    preset: str | None,
    overrides: list[str] | tuple[str, ...],
    name: str | None = None,
) -> dict[str, Any]:
    """Queue one run of preset with overrides, checked as `dinowm run` checks it."""
    plain_name(name)
    item = _checked(project, preset, [list(overrides)])[0]
    return _queue(project, [_row(item, name, None)])[0]


def add_sweep(
    project: Project,
    preset: str | None,
    axes: list[str] | tuple[str, ...],
    *,
    random_n: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Queue a sweep: the grid of axes (or random_n draws); all configurations are checked
    before any is queued. Returns the sweep id and the entries."""
    plain_name(name)
    parsed = sweep.parse_axes(axes)
    combos = sweep.grid(parsed) if random_n is None else sweep.draw(parsed, random_n, seed)
    resolved = _checked(project, preset, combos)
    sweep_id = f"sw-{secrets.token_hex(3)}"
    prefix = name or sweep_id
    rows = [_row(item, f"{prefix}-{i}", sweep_id) for i, item in enumerate(resolved, 1)]
    return sweep_id, _queue(project, rows)


def resolved_of(entry: dict[str, Any]) -> Resolved:
    """The configuration an entry was checked with when it was added (what its run trains)."""
    return Resolved(
        from_dict(json.loads(entry["config_json"])),
        entry["preset"],
        json.loads(entry.get("changed_json") or "{}"),
        tuple(json.loads(entry["overrides_json"])),
    )


def remove(project: Project, ref: str | int) -> dict[str, Any]:
    """Remove an entry that is not running (queued, or ended)."""
    with Store(project.runs_db) as store:
        entry = store.queue_remove(store.queue_entry(ref)["id"])
    journal.append(project, "remove", id=entry["id"])
    return entry


def move(project: Project, ref: str | int, where: str) -> list[int]:
    """Move a queued entry to position N (1 starts next), or 'up', 'down', 'top', 'bottom';
    returns the queued ids in their new order."""
    with Store(project.runs_db) as store:
        entry = store.queue_entry(ref)
        if entry["state"] != "queued":
            raise DinowmError(
                f"Queue entry {entry['id']} is {entry['state']}; only queued "
                f"entries move ('dinowm queue' shows the states)."
            )
        ids = store.queued_ids()
        at = ids.index(entry["id"])
        target = {"up": at - 1, "down": at + 1, "top": 0, "bottom": len(ids) - 1}.get(where)
        if target is None:
            if not where.isdigit() or int(where) < 1:
                raise ConfigError(
                    f"Position {where!r} for entry {entry['id']}: give 1 to "
                    f"{len(ids)}, up, down, top or bottom."
                )
            target = int(where) - 1
        ids.remove(entry["id"])
        ids.insert(max(0, min(target, len(ids))), entry["id"])
        store.queue_order(ids)
    journal.append(project, "order", ids=ids)
    return ids


def set_paused(project: Project, paused: bool) -> None:
    """Pause (no new entry starts; the running one goes on) or unpause the queue."""
    with Store(project.runs_db) as store:
        store.set_queue_paused(paused)
    journal.append(project, "pause", paused=paused)


def listing(project: Project) -> dict[str, Any]:
    """The queue as every face shows it: entries, paused, the supervisor and its last word."""
    with Store(project.runs_db) as store:
        entries = store.queue_entries()
        paused, status = store.queue_paused(), store.queue_status()
    holder = rundir.holder(project.queue_lock)
    position = 0
    for entry in entries:
        entry["overrides"] = json.loads(entry["overrides_json"])
        if entry["state"] == "queued":
            position += 1
            entry["position"] = position
        else:
            entry["position"] = None
    return {
        "entries": entries,
        "paused": paused,
        "supervisor": holder,
        "status": status if holder else None,
    }

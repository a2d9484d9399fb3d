# SPDX-License-Identifier: MIT
"""`dinowm reindex`: rebuild runs.db from the run folders (config.json, record.jsonl, events,
evaluations.jsonl).

The run folder is the durable record: the trainer's events.jsonl, and record.jsonl where the
store journals everything else it is told (run creation, hardware, status changes, supervisor
incidents, notes, per-epoch GPU summaries). A damaged runs.db is moved aside, never deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.config import Project
from dinowm.events import read_events
from dinowm.store import Store, StoreError

# What becomes of a rebuilt run, decided where it ran (dinowm.backends.rebuilt): the store,
# its rebuilt row, the folder's trainer events, and where events.jsonl ended.
Settle = Callable[[Store, dict[str, Any], list[dict[str, Any]], int], None]


def move_aside(db: Path) -> Path | None:
    """Rename runs.db (and its -wal/-shm) to runs.db.damaged-<time>; returns the new name."""
    if not db.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = db.with_name(f"{db.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{target}{suffix}"))
    return target


def healthy(db: Path) -> bool:
    """True when runs.db opens and passes PRAGMA integrity_check."""
    try:
        with Store(db, migrate=False) as store:
            return store.integrity() == "ok"
    except (StoreError, sqlite3.DatabaseError):
        return False


def apply_record(
    store: Store, run_id: str, items: list[dict[str, Any]], note_ids: dict[int, int] | None = None
) -> None:
    """Replay journal lines into the store (the caller pauses the journal); `note_ids` maps the
    journal's note ids to the store's, for edits that follow."""
    note_ids = {} if note_ids is None else note_ids
    for item in items:
        kind = item.get("kind")
        if kind == "hardware":
            store.set_hardware(run_id, item["hardware"])
        elif kind == "update":
            store.update_run(run_id, **item["fields"])
        elif kind == "note":
            note_ids[item["id"]] = store.add_note(
                run_id, item["text"], item.get("source", "user"), t=item["at"]
            )
        elif kind == "note_edit" and item["id"] in note_ids:
            store.update_note(note_ids[item["id"]], item["text"])
        elif kind == "incident":
            store.add_incident(
                run_id,
                item["incident_kind"],
                item["summary"],
                item.get("details"),
                t=item["at"],
                **item.get("fields", {}),
            )
        elif kind == "epoch_gpu":
            store.upsert_epoch(run_id, item["epoch"], item["summary"])


def rebuild_run(store: Store, run_dir: Path, settle: Settle | None = None) -> str | None:
    """Replay one run folder into the store; returns the run id (None if not a run folder).

    `settle` then decides what the record leaves open (reindex: a run still active ends, a
    cluster run is read on); without it the run keeps the record's status (a Slurm job
    seeding its own store, the queue restoring a row).
    """
    spec_path = run_dir / rundir.SPEC
    if not spec_path.exists():
        return None
    spec = json.loads(spec_path.read_text())
    record = rundir.record_lines(run_dir)
    created = next((r["row"] for r in record if r["kind"] == "run"), None)
    run_id = spec["run_id"]
    row = created or {
        "id": run_id,
        "name": spec.get("name") or run_id,
        "preset": spec.get("preset"),
        "config_json": json.dumps(spec["config"]),
        "config_hash": spec.get("config_hash", ""),
        "command": spec.get("command"),
        "run_dir": str(run_dir),
        "created_at": spec.get("created_at") or 0.0,
        "epochs_target": spec["config"]["training"]["epochs"],
        "sweep_id": spec.get("sweep_id"),
        "queue_entry": spec.get("queue_entry"),
    }
    row = {**row, "run_dir": str(run_dir)}
    with store.journal_paused():
        store.create_run(row)
        apply_record(store, run_id, [r for r in record if r["kind"] != "epoch_gpu"])
        events, events_end = read_events(run_dir / rundir.EVENTS, 0)
        store.ingest(run_id, events)
        apply_record(store, run_id, [r for r in record if r["kind"] == "epoch_gpu"])
        store.sync_checkpoints(run_id, rundir.committed_checkpoints(run_dir))
        for evaluation in rundir.read_evaluations(run_dir):  # in file order: the last one of
            store.add_evaluation({**evaluation, "run_id": run_id})  # a checkpoint wins
        if settle is not None:
            settle(store, store.run(run_id), events, events_end)
    return run_id


def reindex(project: Project, force: bool = False, *, settle: Settle) -> dict[str, Any]:
    """Rebuild runs.db from outputs/*/ when it is missing or damaged (or always with force);
    `settle` ends what each rebuilt run's record leaves open."""
    db = project.runs_db
    if db.exists() and healthy(db) and not force:
        return {"rebuilt": False, "reason": "runs.db is healthy (use --force to rebuild)"}
    moved = move_aside(db) if db.exists() else None
    runs = []
    with Store(db) as store:
        folders = (
            sorted(p for p in project.outputs.glob("*") if p.is_dir())
            if project.outputs.exists()
            else []
        )
        for run_dir in folders:
            run_id = rebuild_run(store, run_dir, settle)
            if run_id:
                runs.append(run_id)
        entries = store.queue_replay(
            rundir.read_jsonl(project.queue_journal, 0)[0], store.runs_by_queue_entry()
        )
        integrity = store.integrity()
    return {
        "rebuilt": True,
        "runs": runs,
        "moved_aside": str(moved) if moved else None,
        "integrity": integrity,
        "queue": entries,
    }

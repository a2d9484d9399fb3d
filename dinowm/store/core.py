# SPDX-License-Identifier: MIT
"""The Store: one connection to runs.db, short BEGIN IMMEDIATE writes with retry."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from dinowm import rundir
from dinowm.errors import DinowmError, NotFoundError
from dinowm.store.apply import apply_event, upsert_epoch_row
from dinowm.store.connection import insert_row
from dinowm.store.evals import EvaluationRows
from dinowm.store.journal import DURABLE_FIELDS, Journal
from dinowm.store.migrations import MIGRATIONS
from dinowm.store.queue import QueueRows
from dinowm.store.reads import BulkReads
from dinowm.store.sql import RUN_SUMMARY_SQL, TELEMETRY_SUMMARY_SQL, fold_samples


class StoreError(DinowmError):
    """runs.db cannot be opened or written."""


class Store(BulkReads, EvaluationRows, QueueRows):
    """One connection to runs.db; writes are short BEGIN IMMEDIATE transactions with retry."""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 30.0,
        migrate: bool = True,
        journal: str = rundir.RECORD,
        telemetry_every_s: float | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path}: cannot open as SQLite ({exc}); move it aside and "
                f"run 'dinowm reindex' to rebuild it from the run folders."
            ) from None
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self.journal = Journal(journal)
        # Inside a Slurm job: every this many seconds one sample per GPU also goes to the run
        # folder (telemetry.job.jsonl), where the login node reads the GPU's state now.
        self.telemetry_every_s = telemetry_every_s
        self._telemetry_sent: dict[tuple[str, Any], float] = {}
        if migrate and MIGRATIONS.pending(self.db):
            self.transaction(lambda db: MIGRATIONS.apply(db))

    def close(self) -> None:
        """Close the connection (the TUI opens, reads and closes)."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------

    def checkpoint_wal(self) -> None:
        """Fold the WAL back into the database file so it cannot grow without bound."""
        self._retry(lambda: self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    def integrity(self) -> str:
        """'ok' or SQLite's description of the damage."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, row: dict[str, Any]) -> str:
        """Insert a new run row (id, name, preset, config_json, ...); returns its id."""
        now = time.time()
        row = {
            "status": "created",
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
            "epoch": 0,
            "step": 0,
            "last_seq": 0,
            **row,
        }
        self.transaction(lambda db: db.table("runs").insert(row))
        self.journal.remember(row["id"], row.get("run_dir"))
        self.journal.append(row["id"], "run", row=row)
        return row["id"]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of one run."""
        fields["updated_at"] = time.time()
        self.transaction(lambda db: db.table("runs").update(run_id, fields))
        durable = {k: v for k, v in fields.items() if k in DURABLE_FIELDS}
        if durable:
            self._journal(run_id, "update", fields=durable)

    def update_run_if(self, run_id: str, statuses: Iterable[str], **fields: Any) -> bool:
        """Set columns of one run only while its status is one of statuses; True if it was.

        A compare-and-set: two processes deciding about the same run (a stop and a finishing
        supervisor, lost detection and a resume) cannot both act on what they read before.
        """
        fields["updated_at"] = time.time()
        allowed = list(statuses)
        sets = ", ".join(f"[{k}] = ?" for k in fields)
        sql = f"update runs set {sets} where id = ? and status in ({', '.join('?' * len(allowed))})"
        changed = self.transaction(
            lambda db: db.execute(sql, [*fields.values(), run_id, *allowed]).rowcount
        )
        durable = {k: v for k, v in fields.items() if k in DURABLE_FIELDS}
        if changed and durable:
            self._journal(run_id, "update", fields=durable)
        return bool(changed)

    def stop_requested(self, run_id: str) -> bool:
        """Whether a user asked this run to stop ('dinowm stop', the TUI's s)."""
        row = self._retry(
            lambda: self.conn.execute(
                "select stop_requested_at from runs where id = ?", [run_id]
            ).fetchone()
        )
        return bool(row and row[0])

    def _journal(self, run_id: str, kind: str, **payload: Any) -> None:
        """Append to the run folder's record.jsonl (see dinowm.store.journal)."""
        self._journal_knows(run_id)
        self.journal.append(run_id, kind, **payload)

    def _journal_knows(self, run_id: str) -> None:
        """Tell the journal where the run's folder is, once."""
        if not self.journal.known(run_id):
            row = self.conn.execute("select run_dir from runs where id = ?", [run_id]).fetchone()
            self.journal.remember(run_id, row[0] if row else None)

    @contextlib.contextmanager
    def journal_paused(self) -> Iterator[None]:
        """Writes that replay a journal must not append to it again (dinowm reindex)."""
        self.journal.paused = True
        try:
            yield
        finally:
            self.journal.paused = False

    def run(self, ref: str) -> dict[str, Any]:
        """A run by id, unique id prefix, exact name, or 'latest'."""
        if ref == "latest":
            rows = self._query("select * from runs order by created_at desc, id desc limit 1")
            if not rows:
                raise NotFoundError(
                    "There are no runs yet; start one with 'dinowm run --preset demo'."
                )
            return rows[0]
        rows = self._query("select * from runs where id = ?", [ref])
        if not rows:
            rows = self._query(
                "select * from runs where id like ? escape '\\' order by id",
                [ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"],
            )
        if not rows:
            rows = self._query("select * from runs where name = ? order by created_at", [ref])
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise NotFoundError(f"No run matches '{ref}'; 'dinowm runs' lists the run ids.")
        ids = ", ".join(r["id"] for r in rows[:5])
        raise NotFoundError(f"'{ref}' matches {len(rows)} runs ({ids}); give more of the id.")

    def runs_with_status(self, statuses: Iterable[str]) -> list[dict[str, Any]]:
        """Full rows of the runs whose status is one of statuses (e.g. the active ones)."""
        wanted = list(statuses)
        return self._query(
            f"select * from runs where status in ({','.join('?' * len(wanted))})", wanted
        )

    def runs_on_slurm(self, live_states: Iterable[str]) -> list[dict[str, Any]]:
        """Cluster runs the login node still follows: active in the record, or whose Slurm job
        was last seen in one of live_states (or not seen yet)."""
        active, live = list(rundir.ACTIVE), list(live_states)
        return self._query(
            f"select * from runs where slurm_job_id is not null and (status in "
            f"({','.join('?' * len(active))}) or slurm_state is null or slurm_state in "
            f"({','.join('?' * len(live))}))",
            [*active, *live],
        )

    def count_runs(self, preset: str) -> int:
        """How many runs of a preset exist (names default to PRESET-N)."""
        return self._query("select count(*) as n from runs where preset = ?", [preset])[0]["n"]

    def runs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs with their summary columns, newest first."""
        sql = RUN_SUMMARY_SQL
        params: list[Any] = []
        if status:
            sql += " where r.status = ?"
            params.append(status)
        sql += " order by r.created_at desc, r.id desc"
        if limit:
            sql += f" limit {int(limit)}"
        return self._query(sql, params)

    def set_hardware(self, run_id: str, hw: dict[str, Any]) -> None:
        """Record the machine a run ran on (one row per run)."""
        row = {k: v for k, v in hw.items() if k != "gpus"}
        row.update(run_id=run_id, gpus_json=json.dumps(hw.get("gpus", [])))
        self.transaction(lambda db: db.table("hardware").upsert(row, pk="run_id"))
        self._journal(run_id, "hardware", hardware=hw)

    def hardware(self, run_id: str) -> dict[str, Any] | None:
        """The hardware row of a run."""
        rows = self._query("select * from hardware where run_id = ?", [run_id])
        return rows[0] if rows else None

    # -- epochs, telemetry, incidents, notes, checkpoints -------------------------------------

    def upsert_epoch(self, run_id: str, epoch: int, fields: dict[str, Any]) -> None:
        """Record (or replace) one epoch of a run; metrics go to metrics_json."""
        self.transaction(lambda db: upsert_epoch_row(db, run_id, epoch, fields))

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """Epoch rows of a run, in order."""
        return self._query("select * from epochs where run_id = ? order by epoch", [run_id])

    def add_telemetry(self, rows: list[dict[str, Any]]) -> None:
        """One transaction for a batch of GPU samples (run_id, t, gpu, temp_c, ...)."""
        if rows:
            self.transaction(lambda db: db.table("telemetry").insert_all(rows, replace=True))
        if rows and self.telemetry_every_s:
            self._forward_telemetry(rows)

    def _forward_telemetry(self, rows: list[dict[str, Any]]) -> None:
        """Every telemetry_every_s, one sample per GPU into the run folder."""
        due: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            key = (row["run_id"], row.get("gpu"))
            if row["t"] - self._telemetry_sent.get(key, 0.0) >= self.telemetry_every_s:
                self._telemetry_sent[key] = row["t"]
                due.setdefault(row["run_id"], []).append(row)
        for run_id, items in due.items():
            self._journal_knows(run_id)
            self.journal.write(run_id, rundir.JOB_TELEMETRY, items)

    def telemetry(self, run_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        """GPU samples of a run in time order."""
        return self._query(
            "select * from telemetry where run_id = ? and t >= ? order by t, gpu", [run_id, since]
        )

    def telemetry_summary(self, run_id: str, t0: float, t1: float) -> dict[str, Any]:
        """Max temperature, mean power and mean utilisation of a run's GPUs between t0 and t1."""
        return self._query(TELEMETRY_SUMMARY_SQL, [run_id, t0, t1])[0]

    def aggregate_telemetry(self, run_id: str, before: float, bucket_s: float) -> int:
        """Fold raw samples older than `before` into one row per GPU and bucket; returns the rows
        folded.

        Means are weighted by sample count, the temperature maximum is kept, throttle reasons
        are OR-ed, so per-epoch summaries stay exact after aggregation.
        """

        before -= before % bucket_s  # whole buckets only: a bucket is folded exactly once

        def body(db: sqlite_utils.Database) -> int:
            rows = list(
                db.query(
                    "select * from telemetry where run_id = ? and t < ? and n = 1 order by gpu, t",
                    [run_id, before],
                )
            )
            if not rows:
                return 0
            buckets: dict[tuple[int, float], list[dict[str, Any]]] = {}
            for r in rows:
                buckets.setdefault((r["gpu"], r["t"] - r["t"] % bucket_s), []).append(r)
            db.execute(
                "delete from telemetry where run_id = ? and t < ? and n = 1", [run_id, before]
            )
            db.table("telemetry").insert_all(
                (
                    fold_samples(run_id, gpu, start, group)
                    for (gpu, start), group in buckets.items()
                ),
                replace=True,
            )
            return len(rows)

        return self.transaction(body)

    def add_incident(
        self,
        run_id: str,
        kind: str,
        summary: str,
        details: dict[str, Any] | None = None,
        t: float | None = None,
        **fields: Any,
    ) -> int:
        """Record an incident (oom, stall, crash, resume, thermal, lost, ...); returns its id."""
        t = time.time() if t is None else t
        row = {
            "run_id": run_id,
            "t": t,
            "kind": kind,
            "summary": summary,
            "details_json": json.dumps(details or {}, default=str),
            **fields,
        }
        pk = self.transaction(lambda db: insert_row(db.table("incidents"), row))
        self._journal(
            run_id,
            "incident",
            incident_kind=kind,
            summary=summary,
            details=details or {},
            fields=fields,
            at=t,
        )
        return pk

    def incidents(self, run_id: str) -> list[dict[str, Any]]:
        """Incidents of a run in time order."""
        return self._query("select * from incidents where run_id = ? order by t, id", [run_id])

    def add_note(self, run_id: str, text: str, source: str = "user", t: float | None = None) -> int:
        """Attach a dated note to a run."""
        if not text.strip():
            raise DinowmError("A note needs some text, e.g. dinowm note latest 'lr too high'.")
        t = time.time() if t is None else t
        row = {"run_id": run_id, "t": t, "text": text.strip(), "source": source}
        pk = self.transaction(lambda db: insert_row(db.table("notes"), row))
        self._journal(run_id, "note", id=pk, text=row["text"], source=source, at=t)
        return pk

    def notes(self, run_id: str) -> list[dict[str, Any]]:
        """Notes of a run in time order."""
        return self._query("select * from notes where run_id = ? order by t, id", [run_id])

    def add_checkpoint(self, run_id: str, row: dict[str, Any]) -> None:
        """Record a committed checkpoint file (path, epoch, step, sha256, size)."""
        full = {"run_id": run_id, "t": time.time(), **row}
        self.transaction(lambda db: db.table("checkpoints").upsert(full, pk=("run_id", "path")))

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Checkpoint records of a run, newest epoch last."""
        return self._query("select * from checkpoints where run_id = ? order by epoch, t", [run_id])

    # -- events --------------------------------------------------------------------------------

    def ingest(
        self,
        run_id: str,
        events: list[dict[str, Any]],
        apply: Callable[[sqlite_utils.Database, str, dict[str, Any]], None] | None = None,
    ) -> int:
        """Apply trainer events with seq > the run's last_seq in one transaction; returns count.

        Ingesting the same events twice is harmless: the run's last_seq moves only forward.
        """

        def body(db: sqlite_utils.Database) -> tuple[int, list[int]]:
            last = db.execute("select last_seq from runs where id = ?", [run_id]).fetchone()
            if last is None:
                raise NotFoundError(f"No run '{run_id}' in {self.path}.")
            fresh = sorted((e for e in events if e["seq"] > last[0]), key=lambda e: e["seq"])
            for event in fresh:
                (apply or apply_event)(db, run_id, event)
            if fresh:
                db.execute(
                    "update runs set last_seq = ?, updated_at = ? where id = ?",
                    [fresh[-1]["seq"], time.time(), run_id],
                )
            return len(fresh), [e["epoch"] for e in fresh if e.get("type") == "epoch"]

        count, epochs = self.transaction(body)
        for epoch in epochs:  # the GPU summary comes from telemetry, which reindex cannot see
            row = self._query(
                "select max_gpu_temp_c, mean_power_w, mean_gpu_util, gpus_json "
                "from epochs where run_id = ? and epoch = ?",
                [run_id, epoch],
            )
            if row and any(v is not None for v in row[0].values()):
                self._journal(run_id, "epoch_gpu", epoch=epoch, summary=row[0])
        return count

    def add_probe(self, row: dict[str, Any]) -> None:
        """Record one `dinowm probe` trial (gpu_name, model_hash, batch, peak_mib, fits, ...)."""
        self.transaction(lambda db: db.table("probes").insert({"t": time.time(), **row}))

    def probes(self, gpu_name: str, model_hash: str) -> list[dict[str, Any]]:
        """Probe trials of one GPU model and model shape, newest first."""
        return self._query(
            "select * from probes where gpu_name = ? and model_hash = ? order by t desc",
            [gpu_name, model_hash],
        )

    def sync_checkpoints(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Make the run's checkpoint records exactly the committed files on disk."""

        def body(db: sqlite_utils.Database) -> None:
            db.execute("delete from checkpoints where run_id = ?", [run_id])
            db.table("checkpoints").insert_all([{"run_id": run_id, **r} for r in rows])

        self.transaction(body)

    def update_note(self, note_id: int, text: str) -> None:
        """Replace the text of a note (a user edit), stamping edited_at."""
        if not text.strip():
            raise DinowmError("A note needs some text; delete words, not the whole note.")
        self.transaction(
            lambda db: db.table("notes").update(
                note_id, {"text": text.strip(), "edited_at": time.time()}
            )
        )
        row = self.conn.execute("select run_id from notes where id = ?", [note_id]).fetchone()
        if row:
            self._journal(row[0], "note_edit", id=note_id, text=text.strip())

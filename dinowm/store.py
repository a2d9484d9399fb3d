"""runs.db: the only module that speaks SQL (sqlite-utils, WAL, BEGIN IMMEDIATE, migrations)."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from dinowm.errors import DinowmError, NotFoundError
from dinowm.migrations import MIGRATIONS

T = TypeVar("T")

ACTIVE = ("created", "running", "resuming", "stopping")
FINAL = ("completed", "stopped", "failed", "lost")
_RETRY_S = 120.0


class StoreError(DinowmError):
    """runs.db cannot be opened or written."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Store:
    """One connection to runs.db; writes are short BEGIN IMMEDIATE transactions with retry."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0, migrate: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open as SQLite ({exc}); move it aside and "
                             f"run 'dinowm reindex' to rebuild it from the run folders.") from None
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
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

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run fn, retrying 'database is locked' with jittered backoff for up to two minutes."""
        deadline = time.monotonic() + _RETRY_S
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    def transaction(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run fn(db) inside BEGIN IMMEDIATE ... COMMIT; the whole body is retried when busy."""

        def attempt() -> T:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self.db)
                self.conn.execute("COMMIT")
                return result
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

        return self._retry(attempt)

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        return self._retry(lambda: list(self.db.query(sql, params)))

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
        row = {"status": "created", "created_at": now, "updated_at": now, "attempts": 0,
               "epoch": 0, "step": 0, "last_seq": 0, **row}
        self.transaction(lambda db: db["runs"].insert(row))
        return row["id"]

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of one run."""
        fields["updated_at"] = time.time()
        self.transaction(lambda db: db["runs"].update(run_id, fields))

    def run(self, ref: str) -> dict[str, Any]:
        """A run by id, unique id prefix, exact name, or 'latest'."""
        if ref == "latest":
            rows = self.query("select * from runs order by created_at desc, id desc limit 1")
            if not rows:
                raise NotFoundError("There are no runs yet; start one with "
                                    "'dinowm run --preset demo'.")
            return rows[0]
        rows = self.query("select * from runs where id = ?", [ref])
        if not rows:
            rows = self.query("select * from runs where id like ? escape '\\' order by id",
                              [ref.replace("\\", "\\\\").replace("%", "\\%")
                               .replace("_", "\\_") + "%"])
        if not rows:
            rows = self.query("select * from runs where name = ? order by created_at", [ref])
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise NotFoundError(f"No run matches '{ref}'; 'dinowm runs' lists the run ids.")
        ids = ", ".join(r["id"] for r in rows[:5])
        raise NotFoundError(f"'{ref}' matches {len(rows)} runs ({ids}); give more of the id.")

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
        return self.query(sql, params)

    def set_hardware(self, run_id: str, hw: dict[str, Any]) -> None:
        """Record the machine a run ran on (one row per run)."""
        row = {k: v for k, v in hw.items() if k != "gpus"}
        row.update(run_id=run_id, gpus_json=json.dumps(hw.get("gpus", [])))
        self.transaction(lambda db: db["hardware"].upsert(row, pk="run_id"))

    def hardware(self, run_id: str) -> dict[str, Any] | None:
        """The hardware row of a run."""
        rows = self.query("select * from hardware where run_id = ?", [run_id])
        return rows[0] if rows else None

    # -- epochs, telemetry, incidents, notes, checkpoints -------------------------------------

    def upsert_epoch(self, run_id: str, epoch: int, fields: dict[str, Any]) -> None:
        """Record (or replace) one epoch of a run; metrics go to metrics_json."""
        self.transaction(lambda db: _upsert_epoch(db, run_id, epoch, fields))

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """Epoch rows of a run, in order."""
        return self.query("select * from epochs where run_id = ? order by epoch", [run_id])

    def add_telemetry(self, rows: list[dict[str, Any]]) -> None:
        """One transaction for a batch of GPU samples (run_id, t, gpu, temp_c, ...)."""
        if rows:
            self.transaction(lambda db: db["telemetry"].insert_all(rows, replace=True))

    def telemetry(self, run_id: str, since: float = 0.0) -> list[dict[str, Any]]:
        """GPU samples of a run in time order."""
        return self.query("select * from telemetry where run_id = ? and t >= ? order by t, gpu",
                          [run_id, since])

    def telemetry_summary(self, run_id: str, t0: float, t1: float) -> dict[str, Any]:
        """Max temperature, mean power and mean utilisation of a run's GPUs between t0 and t1."""
        return self.query(TELEMETRY_SUMMARY_SQL, [run_id, t0, t1])[0]

    def aggregate_telemetry(self, run_id: str, before: float, bucket_s: float) -> int:
        """Fold raw samples older than `before` into one row per GPU and bucket; returns rows folded.

        Means are weighted by sample count, the temperature maximum is kept, throttle reasons
        are OR-ed, so per-epoch summaries stay exact after aggregation.
        """

        before -= before % bucket_s  # whole buckets only: a bucket is folded exactly once

        def body(db: sqlite_utils.Database) -> int:
            rows = list(db.query(
                "select * from telemetry where run_id = ? and t < ? and n = 1 order by gpu, t",
                [run_id, before]))
            if not rows:
                return 0
            buckets: dict[tuple[int, float], list[dict[str, Any]]] = {}
            for r in rows:
                buckets.setdefault((r["gpu"], r["t"] - r["t"] % bucket_s), []).append(r)
            db.execute("delete from telemetry where run_id = ? and t < ? and n = 1",
                       [run_id, before])
            db["telemetry"].insert_all(
                (_fold(run_id, gpu, start, group) for (gpu, start), group in buckets.items()),
                replace=True)
            return len(rows)

        return self.transaction(body)

    def add_incident(self, run_id: str, kind: str, summary: str,
                     details: dict[str, Any] | None = None, **fields: Any) -> int:
        """Record an incident (oom, stall, crash, resume, thermal, lost, ...); returns its id."""
        row = {"run_id": run_id, "t": time.time(), "kind": kind, "summary": summary,
               "details_json": json.dumps(details or {}), **fields}
        return self.transaction(lambda db: db["incidents"].insert(row).last_pk)

    def incidents(self, run_id: str) -> list[dict[str, Any]]:
        """Incidents of a run in time order."""
        return self.query("select * from incidents where run_id = ? order by t, id", [run_id])

    def add_note(self, run_id: str, text: str, source: str = "user") -> int:
        """Attach a dated note to a run."""
        if not text.strip():
            raise DinowmError("A note needs some text, e.g. dinowm note latest 'lr too high'.")
        row = {"run_id": run_id, "t": time.time(), "text": text.strip(), "source": source}
        return self.transaction(lambda db: db["notes"].insert(row).last_pk)

    def notes(self, run_id: str) -> list[dict[str, Any]]:
        """Notes of a run in time order."""
        return self.query("select * from notes where run_id = ? order by t, id", [run_id])

    def add_checkpoint(self, run_id: str, row: dict[str, Any]) -> None:
        """Record a committed checkpoint file (path, epoch, step, sha256, size)."""
        full = {"run_id": run_id, "t": time.time(), **row}
        self.transaction(lambda db: db["checkpoints"].upsert(full, pk=("run_id", "path")))

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Checkpoint records of a run, newest epoch last."""
        return self.query("select * from checkpoints where run_id = ? order by epoch, t",
                          [run_id])

    # -- events --------------------------------------------------------------------------------

    def ingest(self, run_id: str, events: list[dict[str, Any]],
               apply: Callable[[sqlite_utils.Database, str, dict[str, Any]], None] | None = None
               ) -> int:
        """Apply trainer events with seq > the run's last_seq in one transaction; returns count.

        Ingesting the same events twice is harmless: the run's last_seq moves only forward.
        """

        def body(db: sqlite_utils.Database) -> int:
            last = db.execute("select last_seq from runs where id = ?", [run_id]).fetchone()
            if last is None:
                raise NotFoundError(f"No run '{run_id}' in {self.path}.")
            fresh = sorted((e for e in events if e["seq"] > last[0]), key=lambda e: e["seq"])
            for event in fresh:
                (apply or apply_event)(db, run_id, event)
            if fresh:
                db.execute("update runs set last_seq = ?, updated_at = ? where id = ?",
                           [fresh[-1]["seq"], time.time(), run_id])
            return len(fresh)

        return self.transaction(body)

    # -- small queries for the TUI (it opens, reads and closes on every poll) -----------------

    def run_versions(self) -> dict[str, tuple[float | None, int, str]]:
        """id → (updated_at, incident count, status) of every run, for a poller to compare."""
        sql = ("select r.id, r.updated_at, (select count(*) from incidents i where i.run_id = "
               "r.id), r.status from runs r")
        return {row[0]: row[1:] for row in self._retry(lambda: self.conn.execute(sql).fetchall())}

    def run_summaries(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The runs table's columns (no config), for all runs, newest first, or the given ids."""
        if ids is None:
            return self.query(RUN_TABLE_SQL + " order by r.created_at desc, r.id desc")
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows += self.query(RUN_TABLE_SQL + f" where r.id in ({','.join('?' * len(chunk))})",
                               chunk)
        return rows

    def latest_telemetry(self, run_id: str) -> list[dict[str, Any]]:
        """The newest sample of each GPU of a run (index seeks only, whatever the run's length)."""
        return self.query(LATEST_TELEMETRY_SQL, {"r": run_id})

    def update_note(self, note_id: int, text: str) -> None:
        """Replace the text of a note (a user edit), stamping edited_at."""
        if not text.strip():
            raise DinowmError("A note needs some text; delete words, not the whole note.")
        self.transaction(lambda db: db["notes"].update(
            note_id, {"text": text.strip(), "edited_at": time.time()}))

    # -- export-log: read-only, one query per table for any number of runs --------------------

    def runs_oldest_first(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Run rows in creation order: all runs, or only the given ids."""
        return self._of_runs("select * from runs", ids, "created_at, id", column="id")

    def hardware_of(self, ids: list[str] | None) -> dict[str, dict[str, Any]]:
        """run id → hardware row, for the runs that have one (ids None: all runs)."""
        return {r["run_id"]: r for r in self._of_runs("select * from hardware", ids)}

    def epoch_rows_of(self, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """run id → epoch rows in order: the columns of a log, not the bulky metrics_json."""
        columns = ("run_id, epoch, attempt, train_loss, val_loss, z_err_pred, started_at, "
                   "ended_at, duration_s, samples_per_s, peak_gpu_mem_mib, max_gpu_temp_c, "
                   "mean_power_w")
        # Read in table order and sort here: ORDER BY would visit the rows through the index.
        # The rows hold metrics_json too; mapping the file spares copying every page.
        mmap = self.conn.execute("PRAGMA mmap_size").fetchone()[0]
        self.conn.execute("PRAGMA mmap_size = 1073741824")
        try:
            out = self._by_run(f"select {columns} from epochs", ids, None)
        finally:
            self.conn.execute(f"PRAGMA mmap_size = {int(mmap)}")
        for rows in out.values():
            rows.sort(key=lambda r: r["epoch"])
        return out

    def incidents_of(self, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """run id → incidents in time order."""
        return self._by_run("select * from incidents", ids, "t, id")

    def notes_of(self, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """run id → notes in time order."""
        return self._by_run("select * from notes", ids, "t, id")

    def checkpoints_of(self, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """run id → checkpoint records, newest epoch last."""
        return self._by_run("select * from checkpoints", ids, "epoch, t")

    def _of_runs(self, select: str, ids: list[str] | None, order: str | None = None,
                 column: str = "run_id") -> list[dict[str, Any]]:
        """Rows of `select` whose `column` is one of ids (one JSON parameter), or all rows."""
        sql, params = select, []
        if ids is not None:
            sql += f" where {column} in (select value from json_each(?))"
            params.append(json.dumps(ids))
        return self.query(sql + (f" order by {order}" if order else ""), params)

    def _by_run(self, select: str, ids: list[str] | None,
                order: str | None) -> dict[str, list[dict[str, Any]]]:
        """run id → rows of `select` in `order`, with an empty list for every id that has none."""
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids or ()}
        for row in self._of_runs(select, ids, order and f"run_id, {order}"):
            out.setdefault(row["run_id"], []).append(row)
        return out


def apply_event(db: sqlite_utils.Database, run_id: str, event: dict[str, Any]) -> None:
    """Map one trainer event (see dinowm.events) onto rows; called inside a transaction."""
    kind, seq, t = event["type"], event["seq"], event.get("t", time.time())
    runs = db["runs"]
    if kind == "start":
        runs.update(run_id, {k: event.get(k) for k in ("batches_per_epoch", "batch_size",
                                                      "encoder_label", "micro_batch",
                                                      "grad_accum")
                             if event.get(k) is not None} | {"step": event.get("step", 0),
                                                             "phase": "startup",
                                                             "last_heartbeat": t})
    elif kind == "heartbeat":
        fields: dict[str, Any] = {"last_heartbeat": t}
        if "step" in event:
            fields.update(step=event["step"], last_loss=event.get("loss"),
                          samples_per_s=event.get("samples_per_s"), eta_s=event.get("eta_s"),
                          phase="train")
        runs.update(run_id, fields)
    elif kind == "phase":
        runs.update(run_id, {"phase": event.get("phase"), "last_heartbeat": t})
    elif kind == "epoch":
        fields = {k: event.get(k) for k in EPOCH_FIELDS if k in event}
        summary = next(iter(db.query(TELEMETRY_SUMMARY_SQL, [
            run_id, event.get("started_at", t), event.get("ended_at", t)])))
        fields.update({k: v for k, v in summary.items() if v is not None and k != "samples"})
        _upsert_epoch(db, run_id, event["epoch"], {**event.get("metrics", {}), **fields,
                                                    "seq": seq})
        runs.update(run_id, {"epoch": event["epoch"], "last_heartbeat": t})
    elif kind == "checkpoint":
        db["checkpoints"].upsert({"run_id": run_id, "path": event["path"],
                                  "kind": event.get("kind"), "epoch": event.get("epoch"),
                                  "step": event.get("step"), "sha256": event.get("sha256"),
                                  "size": event.get("size"), "t": t}, pk=("run_id", "path"))
    elif kind in ("incident", "error"):
        details = dict(event.get("details") or {})
        if kind == "error":
            details.update({k: v for k, v in event.items()
                            if k not in ("seq", "t", "type", "kind", "message")})
        row = {"run_id": run_id, "t": t, "kind": event.get("kind", kind),
               "summary": event.get("summary") or event.get("message") or kind,
               "details_json": json.dumps(details, default=str), "seq": seq,
               "attempt": event.get("attempt"), "epoch": event.get("epoch"),
               "step": event.get("step")}
        db["incidents"].insert(row)


EPOCH_FIELDS = ("attempt", "train_loss", "val_loss", "z_err_pred", "started_at", "ended_at",
                "duration_s", "steps", "batch_size", "samples_per_s", "peak_gpu_mem_mib")


def _upsert_epoch(db: sqlite_utils.Database, run_id: str, epoch: int,
                  fields: dict[str, Any]) -> None:
    """Merge fields into the epoch row; unknown metric names go to metrics_json."""
    columns = set(db["epochs"].columns_dict)
    existing = list(db.query("select * from epochs where run_id = ? and epoch = ?",
                             [run_id, epoch]))
    row = dict(existing[0]) if existing else {"run_id": run_id, "epoch": epoch}
    metrics = json.loads(row.get("metrics_json") or "{}")
    for key, value in fields.items():
        if key in columns:
            row[key] = value
        else:
            metrics[key] = value
    row["metrics_json"] = json.dumps(metrics, sort_keys=True)
    db["epochs"].upsert(row, pk=("run_id", "epoch"))


def _fold(run_id: str, gpu: int, start: float, group: list[dict[str, Any]]) -> dict[str, Any]:
    """One aggregated telemetry row from raw samples of one GPU and bucket."""

    def mean(key: str) -> float | None:
        values = [r[key] for r in group if r[key] is not None]
        return sum(values) / len(values) if values else None

    def count(key: str) -> int:
        return sum(1 for r in group if r[key] is not None)

    temps = [r["temp_c"] for r in group if r["temp_c"] is not None]
    throttle = 0
    for r in group:
        throttle |= r["throttle"] or 0
    return {"run_id": run_id, "t": start, "gpu": gpu, "n": len(group), "temp_c": mean("temp_c"),
            "temp_max_c": max(temps) if temps else None, "power_w": mean("power_w"),
            "power_limit_w": mean("power_limit_w"), "util_pct": mean("util_pct"),
            "mem_used_mib": mean("mem_used_mib"), "mem_total_mib": mean("mem_total_mib"),
            "sm_clock_mhz": mean("sm_clock_mhz"), "fan_pct": mean("fan_pct"),
            "throttle": throttle, "power_n": count("power_w"), "util_n": count("util_pct")}


TELEMETRY_SUMMARY_SQL = """
select max(coalesce(temp_max_c, temp_c)) as max_gpu_temp_c,
  sum(power_w * coalesce(power_n, n))
    / nullif(sum(case when power_w is null then 0 else coalesce(power_n, n) end), 0)
    as mean_power_w,
  sum(util_pct * coalesce(util_n, n))
    / nullif(sum(case when util_pct is null then 0 else coalesce(util_n, n) end), 0)
    as mean_gpu_util,
  coalesce(sum(n), 0) as samples
from telemetry where run_id = ? and t >= ? and t <= ?
"""

RUN_SUMMARY_SQL = """
select r.*,
  (select train_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_train_loss,
  (select val_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_val_loss,
  (select z_err_pred from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_z_err_pred,
  (select min(z_err_pred) from epochs e where e.run_id = r.id) as best_z_err_pred,
  (select min(val_loss) from epochs e where e.run_id = r.id) as best_val_loss,
  (select max(max_gpu_temp_c) from epochs e where e.run_id = r.id) as max_gpu_temp_c,
  (select count(*) from incidents i where i.run_id = r.id) as incident_count
from runs r
"""

RUN_TABLE_SQL = """
select r.id, r.name, r.preset, r.status, r.env, r.created_at, r.started_at, r.ended_at,
  r.updated_at, r.epochs_target, r.epoch, r.attempts, r.host,
  (select train_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_train_loss,
  (select val_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_val_loss,
  (select z_err_pred from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_z_err_pred,
  (select mean_power_w from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_mean_power_w,
  (select min(z_err_pred) from epochs e where e.run_id = r.id) as best_z_err_pred,
  (select max(max_gpu_temp_c) from epochs e where e.run_id = r.id) as max_gpu_temp_c,
  (select count(*) from incidents i where i.run_id = r.id) as incident_count
from runs r
"""

LATEST_TELEMETRY_SQL = """
with recursive g(gpu) as (
  select min(gpu) from telemetry where run_id = :r
  union all
  select (select min(gpu) from telemetry where run_id = :r and gpu > g.gpu) from g
  where g.gpu is not null)
select t.* from g join telemetry t on t.run_id = :r and t.gpu = g.gpu
  and t.t = (select max(t) from telemetry where run_id = :r and gpu = g.gpu)
order by t.gpu
"""

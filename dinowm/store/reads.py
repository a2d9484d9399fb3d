# SPDX-License-Identifier: MIT
"""Read-only queries over many runs at once, for the TUI's polls and export-log."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from dinowm.store.connection import Connection
from dinowm.store.sql import LATEST_TELEMETRY_SQL, RUN_TABLE_SQL


class BulkReads(Connection):
    """Mixed into Store: one query per table for any number of runs."""

    def run_versions(self) -> dict[str, tuple[float | None, int, str]]:
        """id → (updated_at, incident count, status) of every run, for a poller to compare."""
        sql = (
            "select r.id, r.updated_at, (select count(*) from incidents i where i.run_id = "
            "r.id), r.status from runs r"
        )
        return {row[0]: row[1:] for row in self._retry(lambda: self.conn.execute(sql).fetchall())}

    def run_summaries(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The runs table's columns (no config), for all runs, newest first, or the given ids."""
        if ids is None:
            return self._query(RUN_TABLE_SQL + " order by r.created_at desc, r.id desc")
        rows: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows += self._query(
                RUN_TABLE_SQL + f" where r.id in ({','.join('?' * len(chunk))})", chunk
            )
        return rows

    def latest_telemetry(self, run_id: str) -> list[dict[str, Any]]:
        """The newest sample of each GPU of a run (index seeks only, whatever the run's length)."""
        return self._query(LATEST_TELEMETRY_SQL, {"r": run_id})

    def alert_feed(
        self, after_id: int | None, kinds: tuple[str, ...]
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], int]:
        """(run id → name, status, epoch, target, exit reason; incidents of `kinds` with
        after_id < id <= the newest id; the newest incident id) for an alert watcher."""
        top = self._retry(
            lambda: self.conn.execute("select coalesce(max(id), 0) from incidents").fetchone()[0]
        )
        runs = {
            r["id"]: r
            for r in self._query(
                "select id, name, status, epoch, epochs_target, exit_reason from runs"
            )
        }
        incidents = (
            []
            if after_id is None or not kinds
            else self._query(
                "select id, run_id, kind, summary, details_json from incidents where id > ? and "
                "id <= ? and kind in (select value from json_each(?)) order by id",
                [after_id, top, json.dumps(list(kinds))],
            )
        )
        return runs, incidents, top

    def run_ids_oldest_first(self) -> list[str]:
        """Every run id in creation order (without reading the rows)."""
        sql = "select id from runs order by created_at, id"
        return [row[0] for row in self._retry(lambda: self.conn.execute(sql).fetchall())]

    def runs_oldest_first(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Run rows in creation order: all runs, or only the given ids."""
        return self._of_runs("select * from runs", ids, "created_at, id", column="id")

    def hardware_of(self, ids: list[str] | None) -> dict[str, dict[str, Any]]:
        """run id → hardware row, for the runs that have one (ids None: all runs)."""
        return {r["run_id"]: r for r in self._of_runs("select * from hardware", ids)}

    def epoch_rows_of(self, ids: list[str] | None) -> dict[str, list[Any]]:
        """run id → epoch rows (read-only mappings) in order: the columns of a log, not the
        bulky metrics_json.

        One indexed query per run: the covering index epochs_summary hands each run's rows
        over in epoch order, and no row carries its run id (a log reads 100,000 rows).
        """
        sql = (
            "select epoch, attempt, train_loss, val_loss, z_err_pred, started_at, ended_at, "
            "duration_s, samples_per_s, peak_gpu_mem_mib, max_gpu_temp_c, mean_power_w "
            "from epochs where run_id = ? order by epoch"
        )
        if ids is None:
            ids = [row[0] for row in self.conn.execute("select id from runs")]

        def read() -> dict[str, list[sqlite3.Row]]:
            cursor = self.conn.cursor()
            cursor.row_factory = sqlite3.Row  # built in C, read by name like a dict
            return {run_id: cursor.execute(sql, (run_id,)).fetchall() for run_id in ids}

        return self._retry(read)

    def epoch_gpus_of(self, ids: list[str] | None) -> dict[str, list[tuple[int, list[Any]]]]:
        """run id → (epoch, per-GPU summaries) of the runs on several GPUs, in epoch order."""
        keep = None if ids is None else set(ids)
        out: dict[str, list[tuple[int, list[Any]]]] = {}
        for row in self._query(
            "select run_id, epoch, gpus_json from epochs where gpus_json "
            "is not null order by run_id, epoch"
        ):  # the partial index
            if keep is None or row["run_id"] in keep:
                out.setdefault(row["run_id"], []).append(
                    (row["epoch"], json.loads(row["gpus_json"]))
                )
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

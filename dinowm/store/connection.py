# SPDX-License-Identifier: MIT
"""What every part of the Store shares: runs.db's connection, writes as BEGIN IMMEDIATE
transactions retried while another process holds the database, reads as dicts."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from dinowm.faults import fault

T = TypeVar("T")

_RETRY_S = 120.0


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def insert_row(table: sqlite_utils.db.Table, row: dict[str, Any]) -> int:
    """Insert one row; its rowid (a plain insert into a rowid table always has one)."""
    pk = table.insert(row).last_pk
    assert isinstance(pk, int), pk
    return pk


class Connection:
    """runs.db open (Store opens it and migrates it); the base of the Store and its parts."""

    path: Path
    conn: sqlite3.Connection
    db: sqlite_utils.Database

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
                fault("db_tx")
                result = fn(self.db)
                self.conn.execute("COMMIT")
                return result
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

        return self._retry(attempt)

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts (the store's own; callers use the named reads)."""
        return self._retry(lambda: list(self.db.query(sql, params)))

    def _of_runs(
        self, select: str, ids: list[str] | None, order: str | None = None, column: str = "run_id"
    ) -> list[dict[str, Any]]:
        """Rows of `select` whose `column` is one of ids (one JSON parameter), or all rows."""
        sql, params = select, []
        if ids is not None:
            sql += f" where {column} in (select value from json_each(?))"
            params.append(json.dumps(ids))
        return self._query(sql + (f" order by {order}" if order else ""), params)

    def _by_run(
        self, select: str, ids: list[str] | None, order: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        """run id → rows of `select` in `order`, with an empty list for every id that has none."""
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids or ()}
        for row in self._of_runs(select, ids, order and f"run_id, {order}"):
            out.setdefault(row["run_id"], []).append(row)
        return out

# SPDX-License-Identifier: MIT
"""Supervised runs of a tiny real trainer: the real `dinowm` command, real processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.trainer import TINY

REPO = Path(__file__).resolve().parents[2]
FAST_WATCHDOG = ["watchdog.backoff_s=0", "watchdog.kill_grace_s=2", "watchdog.startup_s=120",
                 "telemetry.interval_s=0.2"]


class Project:
    """A project folder with the shipped dinowm.toml and helpers to run and inspect runs."""

    def __init__(self, root: Path):
        self.root = root
        (root / "dinowm.toml").write_text((REPO / "dinowm.toml").read_text())
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}

    def cli(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dinowm", *args], cwd=self.root,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dinowm", *args], cwd=self.root,
                                env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.root / "runs.db")
        conn.row_factory = sqlite3.Row
        return conn

    def rows(self, sql: str, *params: object) -> list[dict]:
        conn = self.db()
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def run_row(self) -> dict:
        return self.rows("select * from runs order by created_at desc limit 1")[0]

    def incidents(self, run_id: str, kind: str) -> list[dict]:
        """The run's incidents of one kind in time order, details decoded."""
        rows = self.rows("select * from incidents where run_id = ? and kind = ? order by t",
                         run_id, kind)
        return [{**r, "details": json.loads(r["details_json"] or "{}")} for r in rows]

    def wait_for(self, sql: str, *params: object, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.root / "runs.db").exists():
                try:
                    rows = self.rows(sql, *params)
                except sqlite3.OperationalError:
                    rows = []
                if rows:
                    return rows
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {sql} {params}")


def tiny(*extra: str) -> list[str]:
    """--preset demo with the tiny model and fast watchdog settings, plus extra overrides."""
    return ["--preset", "demo", *TINY, *FAST_WATCHDOG, *extra]

# SPDX-License-Identifier: MIT
"""runs.db under load with a writer killed mid-transaction; runs.db lost or damaged: reindex."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from dinowm.store import Store
from tests.support import store_load
from tests.support.supervised import Project, tiny

LOAD = Path(store_load.__file__)  # run as a script, one process per role


def test_writers_and_a_reader_with_one_writer_killed_mid_transaction(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Store(db) as store:
        for rid in ("notes", "epochs", "telemetry", "mixed"):
            store.create_run({"id": rid, "name": rid, "config_json": "{}", "config_hash": "x"})
    roles = ["notes", "epochs", "telemetry", "mixed", "reader"]
    procs = {}
    for role in roles:
        env = {**os.environ}
        if role == "mixed":  # killed by SIGKILL inside its 40th write transaction
            env["DINOWM_FAULT"] = "db_tx:40:sigkill"
        procs[role] = subprocess.Popen(
            [sys.executable, str(LOAD), str(db), role, "epochs" if role == "reader" else role,
             "10", str(tmp_path / f"{role}.ack")], stderr=subprocess.PIPE, text=True, env=env)
    for role, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        if role == "mixed":
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 0, f"{role}: {err}"
        assert "locked" not in err
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    # Each round of the mixed writer is two transactions (an incident, then the run's step);
    # its 40th, the step of round 20, was killed inside: round 20's incident is committed but
    # not yet acknowledged, and the killed update left no trace.
    acked = len((tmp_path / "mixed.ack").read_text().split("\n")[:-1])
    (stored,) = conn.execute("select count(*) from incidents where run_id = 'mixed'").fetchone()
    (step,) = conn.execute("select step from runs where id = 'mixed'").fetchone()
    assert acked == 19 and stored == 20 and step == 19
    notes = {int(x.split()[1]) for x in (tmp_path / "notes.ack").read_text().splitlines()}
    assert notes <= {r[0] for r in conn.execute("select id from notes")}
    conn.close()
    with Store(db) as store:
        store.checkpoint_wal()
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size < 4 * 2**20


def _snapshot(project: Project) -> dict:
    run = project.run_row()
    keep = ("id", "name", "preset", "status", "epoch", "epochs_target", "attempts",
            "exit_reason", "config_hash", "command")
    return {
        "run": {k: run[k] for k in keep},
        "epochs": project.rows("select epoch, train_loss, val_loss, z_err_pred, duration_s "
                               "from epochs order by epoch"),
        "notes": project.rows("select text, source from notes order by t"),
        "incidents": project.rows("select kind, summary from incidents order by t, kind"),
        "hardware": project.rows("select cpu_model, ram_total_mib, gpu_count from hardware"),
        "checkpoints": project.rows("select path, sha256 from checkpoints order by path"),
    }


def test_reindex_rebuilds_a_deleted_or_damaged_runs_db(project: Project, tmp_path: Path) -> None:
    env = {"DINOWM_FAULT": "global_step:4:sigkill", "DINOWM_FAULT_ONCE": str(tmp_path / "f")}
    out = project.cli("run", *tiny("training.epochs=2", "training.max_steps_per_epoch=3"),
                      "--note", "first", env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    run_id = project.run_row()["id"]
    assert project.cli("note", run_id, "second").returncode == 0
    before = _snapshot(project)
    assert {i["kind"] for i in before["incidents"]} >= {"crash", "resume", "telemetry"}
    db = project.root / "runs.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    out = project.cli("reindex")
    assert out.returncode == 0 and "from 1 run folders" in out.stdout, out.stdout + out.stderr
    assert _snapshot(project) == before
    db.write_bytes(b"\0garbage" * 4096)  # damaged
    out = project.cli("runs")
    assert out.returncode != 0 and "dinowm reindex" in out.stderr
    out = project.cli("reindex")
    assert out.returncode == 0 and "damaged-" in out.stdout
    assert _snapshot(project) == before
    assert list(project.root.glob("runs.db.damaged-*"))
    assert "healthy" in project.cli("reindex").stdout
    record = (Path(project.run_row()["run_dir"]) / "record.jsonl").read_text().splitlines()
    assert {json.loads(x)["kind"] for x in record} >= {"run", "hardware", "note", "incident",
                                                       "update"}

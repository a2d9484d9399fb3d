# SPDX-License-Identifier: MIT
"""runs.db: migrations, run lookup, idempotent ingest, several processes at once."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dinowm.errors import NotFoundError
from dinowm.store.migrations import MIGRATIONS
from dinowm.store import Store
from tests.support import store_load

LOAD = Path(store_load.__file__)  # run as a script, one process per role


def _run(store: Store, run_id: str, **extra: object) -> None:
    store.create_run({"id": run_id, "name": extra.pop("name", run_id), "preset": "demo",
                      "config_json": "{}", "config_hash": "x", **extra})


def test_open_is_wal_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        assert store._query("pragma journal_mode")[0]["journal_mode"] == "wal"
        tables = set(store.db.table_names())
    assert {"runs", "hardware", "epochs", "telemetry", "incidents", "notes",
            "checkpoints"} <= tables
    with Store(path) as store:  # second open applies nothing and loses nothing
        applied = store._query("select count(*) n from _sqlite_migrations")[0]["n"]
        assert applied == len(MIGRATIONS.applied(store.db)) >= 2
        assert MIGRATIONS.pending(store.db) == []
        assert store.integrity() == "ok"


def test_run_lookup_by_id_prefix_name_and_latest(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        _run(store, "20260107-093348-aaaa", created_at=1.0, name="first")
        _run(store, "20260107-093348-aabb", created_at=2.0, name="second")
        _run(store, "20260108-100000-cccc", created_at=3.0, name="third")
        assert store.run("20260107-093348-aabb")["name"] == "second"
        assert store.run("20260108")["name"] == "third"
        assert store.run("first")["id"] == "20260107-093348-aaaa"
        assert store.run("latest")["name"] == "third"
        with pytest.raises(NotFoundError, match="matches 2 runs"):
            store.run("20260107-093348-aa")
        with pytest.raises(NotFoundError, match="dinowm runs"):
            store.run("nope")
        with pytest.raises(NotFoundError):
            store.run("2026010_")  # LIKE wildcards are literal


def test_epoch_upsert_merges_metrics(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        _run(store, "r1")
        store.upsert_epoch("r1", 1, {"train_loss": 1.5, "train_z_loss": 0.7})
        store.upsert_epoch("r1", 1, {"val_loss": 1.9, "z_err_pred": 0.3, "val_z_loss": 0.8})
        (row,) = store.epochs("r1")
        assert (row["train_loss"], row["val_loss"], row["z_err_pred"]) == (1.5, 1.9, 0.3)
        assert json.loads(row["metrics_json"]) == {"train_z_loss": 0.7, "val_z_loss": 0.8}
        summary = store.runs()[0]
        assert summary["last_train_loss"] == 1.5 and summary["best_z_err_pred"] == 0.3


def test_ingest_same_events_twice_is_harmless(tmp_path: Path) -> None:
    def apply(db, run_id, event):
        db["notes"].insert({"run_id": run_id, "t": event["t"], "text": event["text"],
                            "source": "trainer"})

    events = [{"seq": i, "t": float(i), "text": f"e{i}"} for i in range(1, 6)]
    with Store(tmp_path / "runs.db") as store:
        _run(store, "r1")
        assert store.ingest("r1", events[:3], apply) == 3
        assert store.ingest("r1", events, apply) == 2
        assert store.ingest("r1", events, apply) == 0
        assert [n["text"] for n in store.notes("r1")] == [f"e{i}" for i in range(1, 6)]
        assert store.run("r1")["last_seq"] == 5


def test_failed_ingest_rolls_back_everything(tmp_path: Path) -> None:
    def apply(db, run_id, event):
        if event["seq"] == 2:
            raise ValueError("bad event")
        db["notes"].insert({"run_id": run_id, "t": 0.0, "text": "x", "source": "trainer"})

    with Store(tmp_path / "runs.db") as store:
        _run(store, "r1")
        with pytest.raises(ValueError):
            store.ingest("r1", [{"seq": 1}, {"seq": 2}], apply)
        assert store.notes("r1") == [] and store.run("r1")["last_seq"] == 0


def test_corrupt_db_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception, match="reindex"):
        Store(path)


def test_four_writers_and_a_reader_for_10_seconds(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Store(db) as store:
        for rid in ("notes", "epochs", "telemetry", "mixed"):
            _run(store, rid)
    roles = ["notes", "epochs", "telemetry", "mixed", "reader"]
    procs = []
    for role in roles:
        run_id = "epochs" if role == "reader" else role
        procs.append(subprocess.Popen(
            [sys.executable, str(LOAD), str(db), role, run_id, "10",
             str(tmp_path / f"{role}.ack")], stderr=subprocess.PIPE, text=True))
    for role, proc in zip(roles, procs):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{role}: {err}"
        assert "locked" not in err
    acks = {role: (tmp_path / f"{role}.ack").read_text().split("\n")[:-1] for role in roles}
    assert all(len(lines) > 20 for lines in acks.values()), {k: len(v) for k, v in acks.items()}
    conn = sqlite3.connect(db)
    note_ids = {int(line.split()[1]) for line in acks["notes"]}
    stored = {r[0] for r in conn.execute("select id from notes where run_id = 'notes'")}
    assert note_ids <= stored
    epochs = {r[0] for r in conn.execute("select epoch from epochs where run_id = 'epochs'")}
    assert {int(line.split()[1]) for line in acks["epochs"]} <= epochs
    (tel,) = conn.execute("select count(*) from telemetry where run_id = 'telemetry'").fetchone()
    assert tel == 10 * len(acks["telemetry"])
    (inc,) = conn.execute("select count(*) from incidents where run_id = 'mixed'").fetchone()
    assert inc == len(acks["mixed"])
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_an_epoch_on_several_gpus_keeps_each_gpus_summary(tmp_path: Path) -> None:
    from rich.console import Console

    from dinowm.cli.views import run_view
    from dinowm.export import export_log

    run_dir = tmp_path / "outputs" / "r1"
    run_dir.mkdir(parents=True)
    with Store(tmp_path / "runs.db") as store:
        _run(store, "r1", run_dir=str(run_dir))
        store.add_telemetry([
            {"run_id": "r1", "t": 10.0 + i, "gpu": gpu, "temp_c": 60.0 + 10 * gpu + i,
             "power_w": 100.0 + 50 * gpu, "util_pct": 90.0, "mem_used_mib": 1000.0 * (gpu + 1)}
            for gpu in (0, 1) for i in range(3)])
        store.ingest("r1", [{"seq": 1, "type": "epoch", "epoch": 1, "t": 13.0,
                             "started_at": 9.0, "ended_at": 13.0, "metrics": {}}])
        (row,) = store.epochs("r1")
        gpus = json.loads(row["gpus_json"])
        assert [(g["gpu"], g["max_temp_c"], g["mean_power_w"], g["max_mem_mib"])
                for g in gpus] == [(0, 62.0, 100.0, 1000.0), (1, 72.0, 150.0, 2000.0)]
        assert row["max_gpu_temp_c"] == 72.0  # the run's summary: the hottest GPU
        export_log(store, tmp_path / "log.md", ["r1"])
        shown = Console(width=100, file=io.StringIO(), record=True)
        shown.print(run_view(store.run("r1"), store.epochs("r1"), [], [], None))
    show = shown.export_text()  # as dinowm show prints it
    assert "GPUs per epoch" in show
    assert "│     1 │   1 │     72 │    150 │    90 │    2000 │" in show
    text = (tmp_path / "log.md").read_text()
    assert "### GPUs per Epoch" in text
    assert "| 1 | 0 | 62 | 100 | 90 | 1000 |" in text and "| 1 | 1 | 72 | 150 | 90 | 2000 |" in text
    journal = [json.loads(x) for x in (run_dir / "record.jsonl").read_text().splitlines()]
    (kept,) = [j for j in journal if j["kind"] == "epoch_gpu"]  # what reindex restores
    assert json.loads(kept["summary"]["gpus_json"]) == gpus

"""What the export reads: the latest start event, sparse or damaged records, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from dinowm.export import export_log
from dinowm.export.record import first_start, latest_start, start_event
from dinowm.store import Store


def test_latest_start_reads_backwards_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [{"seq": 1, "type": "start", "attempt": 1}]
    lines += [{"seq": i, "type": "heartbeat", "loss": 0.5, "pad": "x" * 50} for i in range(2, 200)]
    lines += [{"seq": 200, "type": "start", "attempt": 2, "params": {"encoder": 7}}]
    lines += [{"seq": i, "type": "heartbeat", "pad": "y" * 70} for i in range(201, 260)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"seq": 260, "type": "sta')
    for block in (64, 1000, 1 << 20):
        assert latest_start(path, block=block)["attempt"] == 2, block
        assert first_start(path, block=block)["attempt"] == 1, block
    assert latest_start(path, block=64, max_bytes=2000) is None  # bounded: gives up
    assert latest_start(tmp_path / "missing.jsonl") is None
    assert first_start(tmp_path / "missing.jsonl") is None


def test_start_event_of_a_long_run_reads_only_the_ends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    beat = json.dumps({"seq": 0, "type": "heartbeat", "loss": 0.123456, "pad": "z" * 150})
    with open(path, "w") as fh:
        fh.write(json.dumps({"seq": 1, "type": "phase"}) + "\n")
        fh.write(json.dumps({"seq": 2, "type": "start", "attempt": 1}) + "\n")
        fh.write((beat + "\n") * 60_000)  # about 12 MB of heartbeats
    assert start_event(path)["attempt"] == 1
    with open(path, "a") as fh:
        fh.write(json.dumps({"seq": 3, "type": "start", "attempt": 2}) + "\n")
        fh.write((beat + "\n") * 50)  # the latest start is near the end: it is the one
    assert start_event(path)["attempt"] == 2


def test_sparse_and_damaged_records_export_without_inventing(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.create_run({"id": "r1", "name": "empty", "config_json": "{}", "config_hash": "h",
                          "status": "running"})
        store.create_run({"id": "r2", "config_json": "not json", "config_hash": "h",
                          "run_dir": str(tmp_path / "gone")})
        store.upsert_epoch("r2", 1, {"train_loss": 0.5})
        store.upsert_epoch("r2", 2, {"val_loss": 0.4})
        for kind, details in (("stall", {}), ("oom", {}), ("mystery", {"x": 1}),
                              ("thermal", {}), ("crash", {"log_tail": "one line\nlast line"})):
            store.add_incident("r2", kind, f"{kind} happened", details)
        result = export_log(store, tmp_path / "log.md", all_runs=True)
    text = (tmp_path / "log.md").read_text()
    assert result.runs == ["r1", "r2"] and text.count("## Experiment Overview") == 2
    assert "| `epochs` | - |" in text and "**Total emb_dim** | - |" in text  # nothing made up
    assert "No hardware was recorded for this run." in text
    assert f"{tmp_path / 'gone'} is gone" in text and "missing: the run folder is gone" in text
    assert "`mystery`: mystery happened" in text and "last line" in text
    assert "| 1 | 0.5 | - |" in text and "| 2 | - | 0.4 |" in text


def test_cli_export_log(tmp_path: Path, cli) -> None:
    (tmp_path / "dinowm.toml").write_text("[project]\n")
    assert "Example" in cli("export-log", "--help").stdout
    out = cli("export-log", "log.md")
    assert out.returncode == 2 and "no runs yet" in out.stderr
    with Store(tmp_path / "runs.db") as store:
        store.create_run({"id": "20260107-093348-ab12", "config_json": "{}",
                          "config_hash": "h", "status": "completed"})
    out = cli("export-log", "log.md", "--lang", "de")
    assert out.returncode == 0, out.stderr
    assert "## Experiment Übersicht" in (tmp_path / "log.md").read_text()
    out = cli("export-log", "log.md", "zzz")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    out = cli("export-log", "missing/log.md")
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert cli("export-log", "log.md", "--all", "20260107").returncode == 2


def test_start_event_in_lines_longer_than_a_block(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    long = {"seq": 1, "type": "heartbeat", "pad": "p" * 5000}
    path.write_text("".join(json.dumps(e) + "\n" for e in (
        long, {"seq": 2, "type": "start", "attempt": 1, "pad": "q" * 5000}, long, long)))
    for block in (100, 4096, 1 << 16):
        assert latest_start(path, block=block)["attempt"] == 1, block
        assert first_start(path, block=block)["attempt"] == 1, block

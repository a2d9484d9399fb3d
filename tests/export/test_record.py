# SPDX-License-Identifier: MIT
"""What the export reads: sparse or damaged records, the CLI."""

from __future__ import annotations

from pathlib import Path

from dinowm.export import export_log
from dinowm.store import Store


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

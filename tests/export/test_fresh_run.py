# SPDX-License-Identifier: MIT
"""export-log on a freshly trained tiny run: every section, the run's real numbers, re-export."""

from __future__ import annotations

import json
from pathlib import Path

from dinowm.formats import fmt_num
from dinowm.store import Store
from tests.support.trainer import TINY

# As in tests/support/trainer.py: a model small enough for a few seconds per run on 2 cores.
FAST = ["training.epochs=2", "training.max_steps_per_epoch=3", "watchdog.backoff_s=0"]
ENV = {"OMP_NUM_THREADS": "1"}
HEADINGS_EN = ["## Experiment Overview", "## 0. System Hardware", "### GPU", "### CPU", "### RAM",
               "## 1. Dataset Parameters", "## 2. Training Hyperparameters",
               "### 2.1 Base Configuration", "### 2.2 Temporal Parameters",
               "### 2.3 Learning Rates", "### 2.4 Embedding Dimensions",
               "## 3. Model Architecture", "## 4. Training Progress", "### Current Status",
               "### Epoch Log", "## 5. Start Command", "### Resume Training",
               "## 6. Troubleshooting", "## 7. Notes"]
# The headings of the user's hand-kept log (../shared/user-training-log.md), in its order.
HEADINGS_DE = ["## Experiment Übersicht", "## 0. System Hardware", "### GPU", "### CPU",
               "### RAM", "## 1. Datensatz Parameter", "## 2. Training Hyperparameter",
               "### 2.1 Basis-Konfiguration", "### 2.2 Temporal Parameter",
               "### 2.3 Learning Rates", "### 2.4 Embedding Dimensionen",
               "## 3. Modell-Architektur", "## 4. Training Fortschritt", "### Aktueller Status",
               "### Epoch Log", "## 5. Befehl zum Starten", "### Resume Training",
               "## 6. Troubleshooting", "## 7. Notizen"]
LABELS_DE = ["| Feld | Wert |", "| Parameter | Wert | Beschreibung |",
             "| Komponente | Learning Rate | Trainierbar |", "| Metrik | Wert |",
             "**Experiment ID**", "**Start Datum**", "**Checkpoint Pfad**", "**Modell**",
             "**Kerne**", "**Verfügbar**", "`normalize_action`",
             "**Total emb_dim**", "❌ Frozen", "✅ Ja", "Batches pro Epoch", "Aktuelle Epoch"]


def _in_order(text: str, needles: list[str]) -> None:
    at = 0
    for needle in needles:
        found = text.find(needle + "\n", at)
        assert found >= 0, f"{needle!r} missing or out of order"
        at = found + len(needle)


def _epoch_row(e: dict) -> str:
    return (f"| {e['epoch']} | {fmt_num(e['train_loss'])} | {fmt_num(e['val_loss'])} | "
            f"{fmt_num(e['z_err_pred'])} |")


def test_fresh_tiny_run_exports_every_section(project_dir: Path, cli) -> None:
    out = cli("run", "--preset", "demo", "--note", "first tiny run", *TINY, *FAST, env=ENV,
              timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    out = cli("export-log", "log.md")
    assert out.returncode == 0, out.stderr
    log = project_dir / "log.md"
    text = log.read_text()
    _in_order(text, HEADINGS_EN)
    with Store(project_dir / "runs.db") as store:
        run = store.run("latest")
        epochs, hw = store.epochs(run["id"]), store.hardware(run["id"])
    start = json.loads(run["start_json"])
    assert start is not None and len(epochs) == 2
    cfg = json.loads(run["config_json"])
    for needle in (f"`{run['id']}`", run["name"], run["command"], f"dinowm resume {run['id']}",
                   f"cd {project_dir}", "✔ completed", "tiny ViT (random init, untrained)",
                   "Random init, untrained, Frozen", "| 2 / 2 |",
                   f"| Batches per Epoch | {run['batches_per_epoch']} |",
                   f"Conv1d({start['dataset']['proprio_dim']}→10)",
                   f"Conv1d({start['dataset']['sample_action_dim']}→10)",
                   f"**{start['params']['trainable_total']:,}**",
                   f"| {start['params']['encoder']:,} |",
                   f"0 (all: {start['dataset']['episodes']})",
                   f"| `batch_size` | {cfg['training']['batch_size']} |",
                   f"| **Total emb_dim** | **{16 + 10 + 10}** |",
                   f"| **Model** | {hw['cpu_model']} |", "first tiny run",
                   f"![Loss curve](log-{run['id']}-loss.svg)"):
        assert needle in text, needle
    for e in epochs:
        assert _epoch_row(e) in text, _epoch_row(e)
    assert (project_dir / f"log-{run['id']}-loss.svg").read_text().startswith("<svg")

    # The user writes between two generated blocks, trains further and exports again.
    mine = "\nThe tiny run is only a smoke test; compare with the franka run.\n\n"
    log.write_text(text.replace("<!-- dinowm:begin hardware", mine + "<!-- dinowm:begin hardware"))
    out = cli("resume", run["id"], "training.epochs=3", env=ENV, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert cli("export-log", "log.md", run["id"]).returncode == 0
    again = log.read_text()
    assert again.index("<!-- dinowm:end overview") < again.index(mine) < \
        again.index("<!-- dinowm:begin hardware")
    with Store(project_dir / "runs.db") as store:
        epochs = store.epochs(run["id"])
    assert len(epochs) == 3 and _epoch_row(epochs[2]) in again
    assert "| 3 / 3 |" in again and "resumed by the user (`training.epochs=3`)" in again

    out = cli("export-log", "log.de.md", "--lang", "de")
    assert out.returncode == 0, out.stderr
    german = (project_dir / "log.de.md").read_text()
    _in_order(german, HEADINGS_DE)
    for label in LABELS_DE:
        assert label in german, label

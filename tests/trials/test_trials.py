# SPDX-License-Identifier: MIT
"""dinowm.trials without its child processes: the variants of `dinowm bench`, where the public
planner finds an export, which epoch checkpoint is exported, what a probe records; the package
stays torch-free (the trainer's code runs in children)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.config import Resolved, load_project, resolve
from dinowm.errors import ConfigError, NotFoundError
from dinowm.trials.bench import Variant, parse_variants, probe_records
from dinowm.trials.planner import epoch_checkpoint, planner_location

REPO = Path(__file__).resolve().parents[2]


def test_variants_take_a_key_s_last_part_when_it_is_unique() -> None:
    assert parse_variants("fast,fast:decoder_every=4,reference") == [
        Variant("fast", "fast", ()),
        Variant("fast:decoder_every=4", "fast", ("training.decoder_every=4",)),
        Variant("reference", "reference", ())]


@pytest.mark.parametrize("text, words", [
    ("slow", "does not start with a mode"), ("fast:decoder_every", "is not KEY=VALUE"),
    ("fast:mode=reference", "sets the mode twice"), ("fast,fast", "is given twice")])
def test_a_bad_variant_is_named(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_variants(text)


def test_the_planner_finds_a_folder_under_outputs_only(tmp_path: Path) -> None:
    base = tmp_path / "dino_wm"
    assert planner_location(base / rundir.PLANNER_OUTPUTS / "demo-1") == (str(base), "demo-1")
    assert planner_location(tmp_path / "elsewhere" / "demo-1") == (None, None)


def _commit(run_dir: Path, epoch: int) -> None:
    """An epoch checkpoint with its manifest, as the trainer commits one."""
    folder = run_dir / rundir.CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / rundir.epoch_checkpoint(epoch)
    data.write_bytes(b"weights")
    manifest = data.with_name(data.name + ".json")
    manifest.write_text(json.dumps({"epoch": epoch, "size": 7}))


def test_the_newest_epoch_is_exported_and_a_missing_one_lists_the_others(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no committed epoch checkpoint"):
        epoch_checkpoint(tmp_path, "run-1", None)
    for epoch in (1, 3):
        _commit(tmp_path, epoch)
    assert epoch_checkpoint(tmp_path, "run-1", None)["epoch"] == 3
    assert epoch_checkpoint(tmp_path, "run-1", 1)["epoch"] == 1
    with pytest.raises(NotFoundError, match="available epochs: 1, 3"):
        epoch_checkpoint(tmp_path, "run-1", 2)


def test_a_probe_records_each_trial_for_this_card_and_model() -> None:
    resolved: Resolved = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo")
    card = {"name": "NVIDIA H100", "vram_mib": 81559}
    rows = [{"batch": 8, "fits": True, "peak_mib": 900.0, "status": "ok", "s_per_step": 0.1},
            {"batch": 16, "fits": False, "status": "oom"}]
    records = probe_records(card, resolved, rows)
    assert [(r["batch"], r["fits"], r["peak_mib"]) for r in records] == [(8, 1, 900.0),
                                                                         (16, 0, None)]
    assert {r["gpu_name"] for r in records} == {"NVIDIA H100"}
    assert {r["preset"] for r in records} == {"demo"}


def test_the_trials_never_import_torch() -> None:
    code = ("import sys, dinowm.trials, dinowm.trials.bench, dinowm.trials.planner, "
            "dinowm.trials.scaling; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

# SPDX-License-Identifier: MIT
"""Tables printed to a pipe keep every value whole (the real `dinowm` command, stdout a pipe,
COLUMNS unset), and each command with --json prints its records as one JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dinowm.cli import main
from dinowm.cli.base import err_console
from tests.support.hostile import KEYS, RUN, hostile_project
from tests.support.trainer import TINY

LONG = {key: f"{key.replace('_', '-')}-" + "long-value-" * 12 + "end" for key in KEYS}


def piped(*args: str, cwd: Path) -> str:
    """stdout of the real command writing into a pipe (a terminal's width unknown)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    proc = subprocess.run([sys.executable, "-m", "dinowm", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode in (0, 1), (args, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "…" not in proc.stdout, (args, proc.stdout)  # no value cut
    return proc.stdout


@pytest.fixture
def long_project(tmp_path: Path) -> Path:
    """A project whose names, notes, presets, paths and entries are long."""
    hostile_project(tmp_path, LONG)
    return tmp_path


@pytest.mark.parametrize("args, keys", [
    (("runs",), ("name",)),
    (("show", RUN), ("name", "note", "summary", "exit_reason", "override", "hw")),
    (("evals",), ("checkpoint",)),
    (("queue",), ("entry", "override")),
    (("presets",), ("preset_description",)),
    (("config", "--preset", "demo", f"data.path=/{LONG['data_path']}"), ("data_path",)),
    (("doctor", "--preset", "hostile"), ("data_path",)),
])
def test_a_piped_table_shows_long_values_whole(long_project: Path, args: tuple[str, ...],
                                               keys: tuple[str, ...]) -> None:
    out = piped(*args, cwd=long_project)
    for key in keys:
        assert LONG[key] in out, (args, key, out)


def test_hardware_piped_is_whole(tmp_path: Path) -> None:
    facts = json.loads(piped("hardware", "--json", cwd=tmp_path))
    out = piped("hardware", cwd=tmp_path)
    for value in (facts["cpu_model"], facts["hostname"]):
        assert not value or value in out, (value, out)


def test_a_dataset_piped_is_whole(tmp_path: Path) -> None:
    # datasets are read with torch: the torch-free core venv (make test-core-py310) skips this
    pytest.importorskip("torch", reason="dinowm data reads datasets with torch")
    folder = tmp_path / ("a-dataset-folder-" + "with-a-long-name-" * 8)
    piped("data", "synth", str(folder), "--episodes", "2", "--length", "10", "--image-size", "8",
          cwd=tmp_path)
    out = piped("data", "check", str(folder), "--frameskip", "1", "--num-hist", "1", cwd=tmp_path)
    assert f"dataset {folder}" in out and "min 10 / mean 10.0 / max 10 frames" in out


@pytest.mark.extended
def test_bench_piped_shows_its_numbers_whole(project_dir: Path) -> None:
    out = piped("bench", "--preset", "demo", "--batch", "2", "--steps", "1", "--warmup", "0",
                "--variants", "fast:decoder_every=2", "--json", "bench.json", *TINY,
                cwd=project_dir)
    row = json.loads((project_dir / "bench.json").read_text())["rows"][0]
    assert row["status"] == "ok", row
    for text in ("fast:decoder_every=2", f"{row['s_per_step']:.4f}",
                 f"{row['samples_per_s']:.1f}", "vs reference: no reference variant"):
        assert text in out, (text, out)


def test_probe_and_scaling_tables_piped_are_whole(tmp_path: Path) -> None:
    """No GPU here for a real probe: its table (and scaling's) through the command's console."""
    card = {"name": "NVIDIA A-Very-Long-Card-Name " + "x" * 80, "vram_mib": 81559}
    code = (
        "from dinowm.cli.base import console\n"
        "from dinowm.cli.perfviews import probe_table, scaling_table\n"
        f"console.print(probe_table({card!r}, 'demo', [{{'batch': 4096, 'peak_mib': 81234.5, "
        "'fits': True}]))\n"
        "console.print(scaling_table({'preset': 'demo', 'batch_size': 64, 'efficiency': 0.987, "
        "'rows': [{'ranks': 1, 'status': 'ok', 'samples_per_s': 12345.678, 's_per_step': "
        "1.4733333, 'peak_gpu_mem_mib': 70000.0}, {'ranks': 8, 'status': 'ok', "
        "'samples_per_s': 98765.4321, 's_per_step': 0.7123456, 'peak_gpu_mem_mib': 71000.0}]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         text=True, check=True, timeout=120).stdout
    assert "…" not in out
    for text in (card["name"], "79.33 GiB", "✅ fits (largest)", "1.4733", "98765.4", "99%"):
        assert text in out, (text, out)


@pytest.mark.parametrize("args", [
    ("runs", "--json"), ("show", RUN, "--json"), ("evals", "--json"), ("queue", "--json"),
    ("presets", "--json"), ("config", "--preset", "demo", "--json"), ("hardware", "--json"),
])
def test_json_is_one_document(long_project: Path, args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, ["--config", str(long_project / "dinowm.toml"), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    json.loads(result.stdout)  # one document, nothing around it


def test_bench_json_to_stdout_sends_the_table_to_stderr(project_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dinowm.trials import bench as trials

    monkeypatch.delenv("COLUMNS", raising=False)  # as in a pipe (xdist's workers set 80)
    monkeypatch.setattr(err_console, "_width", None)

    rows = [{"batch": 8, "variant": "fast", "mode": "fast", "status": "ok", "s_per_step": 1.4733,
             "samples_per_s": 5.43, "device": "cpu"}]

    def fake(*args: object, report, **kwargs: object) -> dict:
        report(rows[0])
        return {"preset": "demo", "rows": rows, "reference": None}

    monkeypatch.setattr(trials, "bench", fake)
    result = CliRunner().invoke(main, ["--config", str(project_dir / "dinowm.toml"), "bench",
                                       "--preset", "demo", "--mode", "fast", "--json", "-"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["rows"] == rows
    assert "1.4733" in result.stderr and "fast batch 8: ok" in result.stderr

# SPDX-License-Identifier: MIT
"""The dinowm command: runs, show, note, hardware, presets, --help everywhere."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from dinowm.cli import main
from dinowm.store import Store
from dinowm.supervise.procinfo import ProcessRef


def _seed(project_dir: Path) -> str:
    me = ProcessRef.of(os.getpid())  # a live "supervisor", so reconcile keeps it running
    with Store(project_dir / "runs.db") as store:
        store.create_run({"id": "20260107-093348-ab12", "name": "lively-violet-5",
                          "preset": "franka_f5_h3", "config_json": "{}", "config_hash": "h",
                          "epochs_target": 100, "status": "running", "started_at": 1.7e9,
                          "supervisor_pid": me.pid, "supervisor_start": me.start,
                          "host": socket.gethostname()})
        for e in (1, 2):
            store.upsert_epoch("20260107-093348-ab12", e, {
                "train_loss": 0.5 / e, "val_loss": 0.6 / e, "z_err_pred": 0.25 / e,
                "max_gpu_temp_c": 70.0 + e, "duration_s": 1500.0})
        store.update_run("20260107-093348-ab12", epoch=2)
    return "20260107-093348-ab12"


def test_runs_table_shows_the_columns(project_dir: Path, cli) -> None:
    _seed(project_dir)
    out = cli("runs")
    assert out.returncode == 0, out.stderr
    for needle in ("20260107-093348-ab12", "lively-violet-5", "franka_f5_h3", "running",
                   "2/100", "0.25", "0.3", "0.125", "72"):
        assert needle in out.stdout, needle
    data = json.loads(cli("runs", "--json").stdout)
    assert data[0]["best_z_err_pred"] == 0.125


def test_runs_table_fits_80_columns_without_cutting_values(project_dir: Path, cli) -> None:
    _seed(project_dir)
    out = cli("runs", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    assert "…" not in out.stdout  # columns give way whole; kept values are never cut
    for needle in ("20260107-093348-ab12", "running", "2/100", "0.25", "0.3", "0.125"):
        assert needle in out.stdout, needle
    assert "franka_f5_h3" not in out.stdout  # the preset column gave way first


def test_show_note_and_latest(project_dir: Path, cli) -> None:
    run_id = _seed(project_dir)
    out = cli("note", "latest", "froze", "at", "epoch", "12")
    assert out.returncode == 0, out.stderr
    out = cli("show", "20260107")
    assert out.returncode == 0, out.stderr
    assert run_id in out.stdout and "froze at epoch 12" in out.stdout
    assert "epochs" in out.stdout and "0.125" in out.stdout
    data = json.loads(cli("show", "latest", "--json").stdout)
    assert data["notes"][0]["text"] == "froze at epoch 12"


def test_unknown_run_is_one_line_exit_2(project_dir: Path, cli) -> None:
    _seed(project_dir)
    out = cli("show", "zzz")
    assert out.returncode == 2 and "dinowm runs" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = cli("note", "latest", "   ")
    assert out.returncode != 0 and "note needs some text" in out.stderr


def test_no_runs_yet(project_dir: Path, cli) -> None:
    out = cli("show", "latest")
    assert out.returncode == 2 and "dinowm run --preset demo" in out.stderr
    assert "0 runs" in cli("runs").stdout


def test_hardware_without_gpu_says_so(cli) -> None:
    out = cli("hardware")
    assert out.returncode == 0, out.stderr
    assert "no GPU" in out.stdout and "RAM total" in out.stdout
    data = json.loads(cli("hardware", "--json").stdout)
    assert data["gpu_count"] == 0 and data["nvml"].startswith("unavailable")
    assert data["cpu_threads"] >= 1 and data["ram_total_mib"] > 0


def test_presets_lists_the_shipped_ones(project_dir: Path, cli) -> None:
    out = cli("presets")
    assert out.returncode == 0
    for name in ("franka_f5_h3", "franka_f5_h3_b8", "demo"):
        assert name in out.stdout


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=" ".join)
def test_every_command_has_help_with_an_example(cli, path) -> None:
    out = cli(*path, "--help")
    assert out.returncode == 0
    assert "Example" in out.stdout, f"{' '.join(path)} --help shows no example"

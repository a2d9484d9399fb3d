# SPDX-License-Identifier: MIT
"""The [slurm] table, the batch script, and `--slurm` on a machine without Slurm (no cluster
needed, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dinowm.cluster.options import SlurmOptions, options
from dinowm.cluster.script import render
from dinowm.errors import ConfigError
from tests.support.supervised import Project, tiny


def test_the_slurm_table_and_flags_are_checked_naming_key_value_and_fix() -> None:
    opts = options({"nodes": 2, "time": "1-00:00:00", "extra": ["--qos=long"]}, "dinowm.toml",
                   partition="gpu", nodes=None)
    assert opts == SlurmOptions(nodes=2, time="1-00:00:00", extra=("--qos=long",),
                                partition="gpu")
    cases = [({"node": 2}, "Unknown key 'node' in [slurm]"),
             ({"nodes": 0}, "slurm.nodes=0"),
             ({"nodes": "2"}, "must be a whole number, got '2'"),
             ({"time": "two hours"}, "slurm.time='two hours'"),
             ({"extra": ["qos=long"]}, "write it as on sbatch's command line"),
             ({"requeue": "yes"}, "must be true or false")]
    for table, message in cases:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
            options(table, "dinowm.toml")
    with pytest.raises(ConfigError, match="--gpus-per-node"):
        options({}, "dinowm.toml", gpus_per_node=-1)


def test_the_shipped_slurm_table_holds_the_built_in_values() -> None:
    from dinowm.config import load_project

    shipped = load_project(Path(__file__).resolve().parents[2] / "dinowm.toml").slurm
    assert options(shipped, "dinowm.toml") == SlurmOptions()
    assert sorted(shipped) == sorted(SlurmOptions().to_dict())


def test_the_batch_script_says_what_it_asks_for(tmp_path: Path) -> None:
    opts = SlurmOptions(nodes=2, gpus_per_node=4, partition="gpu", account="lab", time="12:00:00",
                        signal_s=300, extra=("--qos=long", "--mem=0"))
    text = render("RUN1", "franka-3", tmp_path / "RUN1", tmp_path / "dinowm.toml", tmp_path,
                  opts, 4, python="/venv/bin/python")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and all(line.startswith("#") for line in lines[:22]
                                                if line and not line.startswith("set"))
    for option in ("--job-name=dinowm-franka-3", "--nodes=2", "--ntasks-per-node=1",
                   "--gpus-per-node=4", "--partition=gpu", "--account=lab", "--time=12:00:00",
                   "--signal=B:USR1@300", "--requeue", "--open-mode=append", "--qos=long",
                   "--mem=0", f"--output={tmp_path / 'RUN1' / 'slurm.out'}"):
        assert f"#SBATCH {option}" in lines, option
    assert lines[-1] == ("exec /venv/bin/python -m dinowm.cluster.job --config "
                         f"{tmp_path / 'dinowm.toml'} --run RUN1")
    assert "4 ranks per node" in text
    plain = render("RUN1", "x", tmp_path, tmp_path / "t", tmp_path, SlurmOptions(requeue=False),
                   1)
    assert "#SBATCH --no-requeue" in plain and "--gpus-per-node" not in plain
    assert "--time" not in plain and "--partition" not in plain


def test_without_slurm_one_line_exit_2_and_nothing_created(project: Project,
                                                          tmp_path: Path) -> None:
    empty = tmp_path / "no-slurm-bin"
    empty.mkdir()
    out = project.cli("run", *tiny("training.epochs=1"), "--slurm", env={"PATH": str(empty)})
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "sbatch, squeue, scancel, scontrol not found on PATH" in out.stderr
    assert "slurm-client" in out.stderr
    assert not (project.root / "outputs").exists()
    runs = project.cli("runs", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout) == []
    flag = project.cli("run", *tiny(), "--nodes", "2")
    assert flag.returncode == 2 and "add --slurm" in flag.stderr
    bad = project.cli("run", *tiny(), "--slurm", "--time", "soon")
    assert bad.returncode == 2 and "slurm.time='soon'" in bad.stderr


def test_stop_of_a_cluster_run_without_slurm_records_nothing(project: Project,
                                                            tmp_path: Path) -> None:
    from dinowm import rundir
    from dinowm.store import Store

    run_dir = project.root / "outputs" / "R1"
    run_dir.mkdir(parents=True)
    rundir.write_spec(run_dir, {"run_id": "R1", "config": {"training": {"epochs": 3}}})
    with Store(project.root / "runs.db") as store:
        store.create_run({"id": "R1", "name": "r1", "config_json": "{}", "config_hash": "",
                          "run_dir": str(run_dir), "epochs_target": 3})
        store.update_run("R1", status="running", slurm_job_id="42", slurm_state="RUNNING")
    empty = tmp_path / "no-slurm-bin"
    empty.mkdir()
    out = project.cli("stop", "R1", env={"PATH": str(empty)})
    assert out.returncode == 2 and "not found on PATH" in out.stderr, out.stderr
    row = project.rows("select status, stop_requested_at from runs where id = 'R1'")[0]
    assert row == {"status": "running", "stop_requested_at": None}
    assert not rundir.stop_requested(run_dir)

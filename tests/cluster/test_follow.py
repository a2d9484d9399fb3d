# SPDX-License-Identifier: MIT
"""The login node's follower against a real Slurm: a job Slurm no longer knows ends the run as
lost; a controller that does not answer changes nothing; a cluster run resumed on this machine
is no longer its old job's."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.backends import Launch, backend_of, resume
from dinowm.cluster.follow import sync
from dinowm.cluster.submit import resubmit
from dinowm.config import Project, load_project, resolve, to_dict
from dinowm.errors import ConfigError
from dinowm.store import Store
from tests.support.slurm import Cluster, free_ports


def _cluster_run(root: Path, job: str) -> tuple[Path, str]:
    run_dir = root / "outputs" / "R1"
    run_dir.mkdir(parents=True)
    rundir.write_spec(run_dir, {"run_id": "R1", "config": {"training": {"epochs": 3}}})
    db = root / "runs.db"
    with Store(db) as store:
        store.create_run({"id": "R1", "name": "r1", "config_json": "{}", "config_hash": "",
                          "run_dir": str(run_dir), "epochs_target": 3})
        store.update_run("R1", status="running", slurm_job_id=job, slurm_state="RUNNING")
    conn = sqlite3.connect(db)  # as if the last word from the job came two minutes ago
    conn.execute("update runs set updated_at = ?", [time.time() - 120])
    conn.commit()
    conn.close()
    return db, "R1"


def _cancelled_demo_run(root: Path, job: str) -> tuple[Project, Path, str]:
    """A project with the shipped dinowm.toml and a cancelled cluster run of the demo preset."""
    (root / "dinowm.toml").write_text((Path(__file__).resolve().parents[2] /
                                       "dinowm.toml").read_text())
    db, run_id = _cluster_run(root, job)
    project = load_project(root / "dinowm.toml")
    run_dir = root / "outputs" / run_id
    rundir.write_spec(run_dir, {**rundir.read_spec(run_dir),
                                "config": to_dict(resolve(project, "demo").config)})
    with Store(db) as store:
        store.update_run(run_id, status="cancelled")
    return project, db, run_id


def test_a_controller_that_does_not_answer_changes_nothing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           slurm_cluster: Cluster) -> None:
    conf = tmp_path / "unreachable.conf"  # the test cluster's, with nothing on its port
    text = re.sub(r"SlurmctldPort=\d+", f"SlurmctldPort={free_ports(1)[0]}",
                  (slurm_cluster.root / "slurm.conf").read_text())
    conf.write_text(text + "MessageTimeout=2\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    db, run_id = _cluster_run(tmp_path, "12345")
    with Store(db) as store:
        assert sync(store) == [run_id]
        row = store.run(run_id)
    assert row["status"] == "running" and row["slurm_state"] == "RUNNING"


def test_a_job_slurm_no_longer_knows_ends_the_run_as_lost(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          slurm_cluster: Cluster) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    db, run_id = _cluster_run(tmp_path, "999999")
    with Store(db) as store:
        sync(store)
        row = store.run(run_id)
    assert row["status"] == "lost" and "no longer knows job 999999" in row["exit_reason"]


def test_a_cluster_run_resumed_here_is_no_longer_its_old_jobs(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             slurm_cluster: Cluster) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    project, db, run_id = _cancelled_demo_run(tmp_path, "999998")
    said: list[str] = []
    started: list[str] = []

    def start(project: Project, run_id: str, lock: rundir.RunLock) -> None:
        started.append(run_id)  # the supervisor here would take the lock over
        lock.release()

    row = resume(project, run_id, [], Launch(start=start, say=said.append), where="local")
    assert started == [run_id] and row["status"] == "created" and row["slurm_job_id"] is None
    assert said == [f"run {run_id} was a Slurm job (last job 999998); training it on this "
                    f"machine because of --local"]
    with Store(db) as store:
        assert backend_of(store.run(run_id)).name == "local"
        assert sync(store) == []  # followed as a local run from now on
        assert store.run(run_id)["status"] == "created"


def test_resume_slurm_with_a_bad_option_changes_nothing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        slurm_cluster: Cluster) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    project, db, run_id = _cancelled_demo_run(tmp_path, "999997")
    run_dir = tmp_path / "outputs" / run_id
    before = rundir.read_spec(run_dir)
    with Store(db) as store:
        with pytest.raises(ConfigError, match="slurm.time='soon'"):
            resubmit(store, project, run_id, ["training.epochs=9"], {"time": "soon"})
        with pytest.raises(ConfigError, match="does not split over 3 nodes"):
            resubmit(store, project, run_id, [], {"nodes": 3})
        assert store.run(run_id)["status"] == "cancelled"
        assert store.incidents(run_id) == []
    assert rundir.read_spec(run_dir) == before

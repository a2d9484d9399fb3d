# SPDX-License-Identifier: MIT
"""Where a run runs is its backend's fact: chosen from the row, each backend's own words, and
the faces' flags checked against the backend they name (the real processes: tests/cluster)."""

from __future__ import annotations

import socket

import pytest

from dinowm import backends
from dinowm.backends import LOCAL, SLURM, backend_of, by_name
from dinowm.errors import ConfigError


def _row(**fields: object) -> dict:
    return {"id": "20260107-093348-ab12", "status": "running", "host": socket.gethostname(),
            "run_dir": "/nowhere", **fields}


def test_a_row_with_a_slurm_job_is_the_slurm_backend_s_and_every_other_the_local_one() -> None:
    assert backend_of(_row(slurm_job_id="12")) is SLURM
    assert backend_of(_row()) is LOCAL and backend_of(_row(slurm_job_id=None)) is LOCAL
    assert {b.name for b in backends.BACKENDS} == {"local", "slurm"}


def test_each_backend_says_where_in_its_own_words() -> None:
    job = _row(slurm_job_id="12", slurm_state="RUNNING", slurm_nodes="n[1-2]",
               slurm_restarts=2)
    assert SLURM.placement(job) == "job 12 RUNNING on n[1-2], requeued 2x"
    pending = _row(slurm_job_id="13", slurm_state="PENDING", slurm_reason="Priority")
    assert SLURM.placement(pending) == "job 13 PENDING (Priority)"
    assert LOCAL.placement(_row()) == ""
    assert "12" in SLURM.describe(job) and LOCAL.where == "this machine"


def test_only_a_local_run_on_this_machine_occupies_it() -> None:
    assert LOCAL.occupies_here(_row())
    assert not LOCAL.occupies_here(_row(host="another-host"))
    assert not SLURM.occupies_here(_row(slurm_job_id="12"))


def test_a_backend_is_named_by_its_flag_and_an_unknown_name_refused_in_one_line() -> None:
    assert by_name("slurm") is SLURM and by_name("local") is LOCAL
    with pytest.raises(ConfigError, match="Unknown backend 'kubernetes'; use one of") as err:
        by_name("kubernetes")
    assert "\n" not in str(err.value)


def test_slurm_flags_on_a_local_launch_are_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--nodes is a Slurm option; add --slurm"):
        backends._takes_flags(LOCAL, {"nodes": 2, "time": None})
    backends._takes_flags(SLURM, {"nodes": 2})  # the Slurm backend takes them
    backends._takes_flags(LOCAL, {"nodes": None})  # flags not given are no flags

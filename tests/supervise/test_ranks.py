# SPDX-License-Identifier: MIT
"""torchrun's failure report read back: the rank that failed first and how."""

from __future__ import annotations

import re

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dinowm.supervise.ranks import first_failure

WORKER = """
import os, signal, sys, time
rank = int(os.environ["RANK"])
time.sleep(0.5)
if rank == 1:
    how = sys.argv[1]
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "exit3":
        sys.exit(3)
    raise RuntimeError("boom")
time.sleep(60)
"""


@pytest.mark.parametrize("how, code, name", [("kill", -9, "SIGKILL"), ("exit3", 3, None),
                                             ("raise", 1, None)])
def test_the_root_cause_of_a_real_torchrun_failure(tmp_path: Path, how: str, code: int,
                                                   name: str | None) -> None:
    pytest.importorskip("torch", reason="torchrun comes with torch: the torch-free core run "
                                        "(make test-core-py310) leaves this to the main suite")
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node=2", "--max-restarts=0", str(script), how],
                         capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1
    failed = first_failure((out.stdout + out.stderr).splitlines())
    assert failed is not None and failed.rank == 1 and failed.exit_code == code
    assert failed.signal_name == name and failed.pid
    assert failed.describe().startswith(f"rank 1 (pid {failed.pid}) ")


def test_no_report_no_failure() -> None:
    assert first_failure(["epoch 1 done", "Traceback (most recent call last):"]) is None


def test_the_lagging_rank_is_behind_or_not_in_a_collective() -> None:
    from dinowm.supervise.ranks import lagging

    beats = [{"rank": 0, "step": 12, "collective": "all_reduce", "t": 100.0},
             {"rank": 1, "step": 12, "t": 90.0}]
    assert lagging(beats)["rank"] == 1
    beats[0]["step"] = 11
    assert lagging(beats)["rank"] == 0
    assert lagging([]) is None


def test_a_stopped_rank_is_diagnosed_with_its_stacks(tmp_path: Path, spawn_process) -> None:
    import json
    import os
    import signal as sig
    import time

    from dinowm import rundir
    from dinowm.supervise.ranks import diagnose

    (tmp_path / rundir.RANKS).mkdir()
    code = """
        import faulthandler, signal, sys, time
        faulthandler.register(signal.SIGUSR1, file=open(sys.argv[1], "a"), all_threads=True)
        def waiting_in_all_reduce():
            print("ready", flush=True)  # inside: a stop right after the print is still in here
            time.sleep(600)
        waiting_in_all_reduce()
    """
    procs = [spawn_process(code, str(rundir.rank_stacks(tmp_path, r))) for r in (0, 1)]
    assert all(p.stdout.readline().strip() == "ready" for p in procs)
    os.kill(procs[1].pid, sig.SIGSTOP)
    now = time.time()
    beats = [{"rank": 0, "pid": procs[0].pid, "step": 7, "phase": "train", "t": now,
              "collective": "all_reduce"},
             {"rank": 1, "pid": procs[1].pid, "step": 7, "phase": "train", "t": now - 30}]
    for b in beats:
        rundir.rank_heartbeat(tmp_path, b["rank"]).write_text(json.dumps(b))
    assert list(rundir.read_rank_heartbeats(tmp_path).values()) == beats
    diag = diagnose(tmp_path, beats, None, sample_s=0.3)
    assert diag["silent_rank"] == 1 and diag["waiting_ranks"] == [0]
    assert re.fullmatch(  # seconds as long as the diagnosis took
        rf"rank 1 \(pid {procs[1].pid}\) stopped \(SIGSTOP\), silent 3\d s at step 7 in phase "
        rf"train; rank 0 \(pid {procs[0].pid}\) waiting for it in all_reduce for \d s",
        diag["headline"]), diag["headline"]
    assert "lagging" not in diag["summary"] and "waiting in all_reduce" in diag["summary"]
    assert diagnose(tmp_path, beats, None, sample_s=0.1, silent=0)["silent_rank"] == 0
    for r in diag["ranks"]:
        assert "waiting_in_all_reduce" in r["stacks"]["text"], r["stacks_note"]


def test_nccls_flight_recorder_dumps_into_the_run_folder_of_a_run_on_several_ranks(
        tmp_path: Path) -> None:
    from dinowm import rundir
    from dinowm.config import with_values
    from dinowm.schema import RunConfig
    from dinowm.supervise.supervisor import flight_recorder, trainer_command

    one = RunConfig()
    assert flight_recorder(tmp_path, one) == {}
    assert trainer_command(one)[-2:] == ["-m", "dinowm.train"]
    two = with_values(one, dist__nproc_per_node=2)
    env = flight_recorder(tmp_path, two)
    assert env["TORCH_NCCL_DUMP_ON_TIMEOUT"] == "1"
    assert env["TORCH_FR_DUMP_TEMP_FILE"] == str(tmp_path / rundir.RANKS / "nccl_trace_rank_")
    assert "--nproc-per-node=2" in trainer_command(two) and "--max-restarts=0" in \
        trainer_command(two)

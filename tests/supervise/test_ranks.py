"""torchrun's failure report read back: the rank that failed first and how."""

from __future__ import annotations

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

# SPDX-License-Identifier: MIT
"""The run folder's locks: exclusive, named, released by the kernel when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dinowm import rundir
from dinowm.rundir import LockHeld, RunLock
from tests.support.process import Spawn, wait_until

HOLD = """
import sys, time
from pathlib import Path
from dinowm.rundir import RunLock
lock = RunLock.acquire(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""
ADOPT = """
import sys, time
from pathlib import Path
from dinowm.rundir import RunLock
lock = RunLock.adopt(Path(sys.argv[1]), int(sys.argv[2]))
print("adopted", flush=True)
time.sleep(600)
"""


def test_a_second_acquire_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = rundir.supervisor_lock(tmp_path)
    assert rundir.holder(path) is None  # no file yet
    with RunLock.acquire(path):
        t0 = time.monotonic()
        with pytest.raises(LockHeld) as err:
            RunLock.acquire(path)
        assert time.monotonic() - t0 < 2.0  # refused, not queued behind the holder
        assert err.value.holder.pid == os.getpid()
        assert f"pid {os.getpid()} on " in str(err.value)
        assert rundir.holder(path).pid == os.getpid()
    assert rundir.holder(path) is None
    RunLock.acquire(path).release()  # free again after release


def test_claim_says_which_supervisor_holds_the_run(tmp_path: Path) -> None:
    with rundir.claim(tmp_path, "20260101-000000-abcd"):
        with pytest.raises(LockHeld) as err:
            rundir.claim(tmp_path, "20260101-000000-abcd")
    text = str(err.value)
    assert "Run 20260101-000000-abcd is already supervised by pid" in text
    assert "dinowm stop 20260101-000000-abcd" in text and "\n" not in text


def test_a_killed_holder_frees_the_lock_at_once(tmp_path: Path, spawn_process: Spawn) -> None:
    path = rundir.supervisor_lock(tmp_path)
    proc = spawn_process(HOLD, str(path))
    assert proc.stdout.readline().strip() == "held"
    assert rundir.holder(path).pid == proc.pid
    with pytest.raises(LockHeld):
        RunLock.acquire(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    t0 = time.monotonic()
    RunLock.acquire(path).release()
    assert time.monotonic() - t0 < 0.4  # no retry: a contended acquire waits 0.5 s


def test_a_lock_handed_to_a_child_stays_held_without_a_gap(tmp_path: Path) -> None:
    path = rundir.supervisor_lock(tmp_path)
    lock = RunLock.acquire(path)
    fd = lock.inheritable_fd()
    child = subprocess.Popen([sys.executable, "-c", ADOPT, str(path), str(fd)], pass_fds=(fd,),
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lock.release()  # the parent's copy; the child's descriptor keeps the lock
        with pytest.raises(LockHeld):
            RunLock.acquire(path)
        assert child.stdout.readline().strip() == "adopted"
        wait_until(lambda: rundir.holder(path).pid == child.pid)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
    RunLock.acquire(path).release()


def test_a_trainer_runs_only_under_its_own_supervisor(tmp_path: Path,
                                                      spawn_process: Spawn) -> None:
    proc = spawn_process(HOLD, str(rundir.supervisor_lock(tmp_path)))
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld) as err:
        rundir.hold_trainer(tmp_path)  # this process does not descend from the holder
    assert f"supervised by pid {proc.pid}" in str(err.value)


def test_each_rank_of_the_supervisors_own_trainer_gets_its_lock(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with RunLock.acquire(rundir.supervisor_lock(tmp_path)):  # this process supervises
            assert os.getpid() in rundir._ancestors(child.pid)
            with rundir.hold_trainer(tmp_path, 0, pid=child.pid), \
                    rundir.hold_trainer(tmp_path, 1, pid=child.pid):
                with pytest.raises(LockHeld) as err:
                    rundir.hold_trainer(tmp_path, 1, pid=child.pid)
                assert "already has a trainer" in str(err.value)
    finally:
        child.kill()
        child.wait()
    assert rundir.trainer_lock(tmp_path, 1).name == "trainer.rank1.lock"


def test_rank_heartbeats_are_read_by_rank_and_unreadable_files_skipped(tmp_path: Path) -> None:
    assert rundir.read_rank_heartbeats(tmp_path) == {}
    for rank in (0, 1, 10):
        path = rundir.rank_heartbeat(tmp_path, rank)
        path.parent.mkdir(exist_ok=True)
        path.write_text(f'{{"rank": {rank}, "step": 3}}')
    rundir.rank_heartbeat(tmp_path, 2).write_text('{"rank": 2, "st')  # torn
    (tmp_path / rundir.RANKS / "rank1.log").write_text("not a heartbeat")
    beats = rundir.read_rank_heartbeats(tmp_path)
    assert list(beats) == [0, 1, 10] and beats[10] == {"rank": 10, "step": 3}

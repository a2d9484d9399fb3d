# SPDX-License-Identifier: MIT
"""procinfo against real child processes: start times, zombies, families, group kills."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dinowm.supervise import procinfo
from dinowm.supervise.procinfo import ProcessRef
from tests.support.process import Spawn, wait_until


@pytest.fixture
def spawn(spawn_process: Spawn) -> Spawn:
    """Start `python -c code` in its own session; its whole group is killed at teardown."""
    return spawn_process


SLEEPER = """
    import time
    print("ready", flush=True)
    time.sleep(600)
"""

# A parent that leaves one child unreaped (the user's `[python] <defunct>`) and keeps another.
PARENT = """
    import subprocess, sys, time
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dead_pid, live_pid = dead.pid, live.pid
    print(dead_pid, live_pid, flush=True)
    time.sleep(600)
"""


def test_start_time_with_spaces_and_parentheses_in_comm(spawn: Spawn) -> None:
    child = spawn("""
        from pathlib import Path
        import time
        Path("/proc/self/comm").write_text("a) (b c)")
        print("ready", flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline() == "ready\n"
    start = procinfo.start_time(child.pid)
    assert isinstance(start, int) and start >= procinfo.start_time(os.getpid())
    assert ProcessRef.of(child.pid) == ProcessRef(child.pid, start)
    assert procinfo.threads(child.pid)[0]["name"] == "a) (b c)"
    [row] = [r for r in procinfo.descendants(os.getpid()) if r["pid"] == child.pid]
    assert row["comm"] == "a) (b c)" and row["ppid"] == os.getpid() and row["state"] in "RS"


def test_reused_pid_is_not_the_same_process(spawn: Spawn) -> None:
    child = spawn(SLEEPER)
    assert child.stdout.readline() == "ready\n"
    ref = ProcessRef.of(child.pid)
    impostor = ProcessRef(child.pid, ref.start - 1)  # what a reused pid looks like
    wait_until(lambda: ref.state() == "S")
    assert ref.alive()
    assert not impostor.alive() and impostor.state() is None
    assert impostor.send(signal.SIGKILL) is False
    assert child.poll() is None and ref.alive()


def test_zombie_and_finished_process_are_not_alive(spawn: Spawn) -> None:
    child = spawn("pass")
    ref = ProcessRef.of(child.pid)
    wait_until(lambda: ref.state() == "Z")
    os.kill(child.pid, 0)  # succeeds on a zombie: why alive() reads the state
    assert not ref.alive()
    assert child.wait(timeout=10) == 0
    assert ref.state() is None and not ref.alive()
    assert procinfo.start_time(child.pid) is None
    with pytest.raises(ProcessLookupError):
        ProcessRef.of(child.pid)


def test_threads_and_cpu_seconds(spawn: Spawn) -> None:
    child = spawn("""
        import threading, time
        for _ in range(2):
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        t0 = time.process_time()
        while time.process_time() - t0 < 0.2:
            pass
        print("ready", flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline() == "ready\n"
    wait_until(lambda: {t["state"] for t in procinfo.threads(child.pid)} == {"S"})
    threads = procinfo.threads(child.pid)
    assert len(threads) == 3 and threads[0]["tid"] == child.pid
    assert threads[0]["ticks"] >= 0.15 * procinfo.TICKS
    assert procinfo.cpu_seconds(child.pid) >= 0.15
    assert procinfo.threads(2**22 + 1) == []
    with pytest.raises(ProcessLookupError):
        procinfo.cpu_seconds(2**22 + 1)


def test_descendants_and_unreaped_zombie(spawn: Spawn) -> None:
    parent = spawn(PARENT)
    dead, live = map(int, parent.stdout.readline().split())
    wait_until(lambda: ProcessRef.of(dead).state() == "Z")
    family = {row["pid"]: row for row in procinfo.descendants(parent.pid)}
    assert set(family) == {dead, live}
    assert family[live]["ppid"] == parent.pid and "time.sleep(600)" in family[live]["cmdline"]
    assert family[dead]["state"] == "Z" and family[dead]["cmdline"] == ""
    parent_comm = procinfo.threads(parent.pid)[0]["name"]
    assert procinfo.zombies(parent.pid) == [{"pid": dead, "comm": family[dead]["comm"],
                                             "ppid": parent.pid, "parent_comm": parent_comm}]
    assert family[dead]["comm"].startswith("python")
    assert procinfo.group_members(parent.pid) == sorted([parent.pid, live])  # zombie left out


def test_kill_group_escalates_to_sigkill_when_sigterm_is_ignored(spawn: Spawn) -> None:
    child = spawn("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    result = procinfo.kill_group(child.pid, child, grace_s=0.5)
    assert time.monotonic() - t0 < 0.5 + 1.0
    assert result["signals"] == ["SIGTERM", "SIGCONT", "SIGKILL"]
    assert result["killed"] and result["exited"] and result["survivors"] == []
    assert result["returncode"] == child.returncode == -signal.SIGKILL
    assert 0.5 <= result["seconds"] < 1.5


def test_kill_group_continues_a_stopped_process_so_it_can_handle_sigterm(
        spawn: Spawn) -> None:
    child = spawn("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
        print("ready", flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline() == "ready\n"
    os.kill(child.pid, signal.SIGSTOP)
    wait_until(lambda: ProcessRef.of(child.pid).state() == "T")
    result = procinfo.kill_group(child.pid, child, grace_s=5.0)
    assert result["signals"] == ["SIGTERM", "SIGCONT"] and not result["killed"]
    assert result["returncode"] == 3 and result["seconds"] < 5.0


def test_kill_group_kills_members_left_after_the_leader_and_reaps_without_popen(
        spawn: Spawn) -> None:
    leader = spawn("""
        import subprocess, sys, time
        code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(600)")
        member = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        member.stdout.readline()
        print(member.pid, flush=True)
        time.sleep(600)
    """)
    member = int(leader.stdout.readline())
    assert procinfo.group_members(leader.pid) == sorted([leader.pid, member])
    result = procinfo.kill_group(leader.pid, None, grace_s=0.5)
    assert result["signals"] == ["SIGTERM", "SIGCONT", "SIGKILL"] and result["killed"]
    assert result["returncode"] == -signal.SIGTERM  # the leader died on SIGTERM, reaped here
    assert result["exited"] and procinfo.group_members(leader.pid) == []
    assert procinfo.start_time(leader.pid) is None  # reaped through waitpid, no zombie left


def test_kill_group_of_a_group_that_is_gone() -> None:
    result = procinfo.kill_group(2**22 + 1, None, grace_s=5.0)
    assert result["signals"] == [] and not result["killed"] and result["seconds"] < 1.0


def test_kill_tree_reaches_children_that_lead_sessions_of_their_own(spawn: Spawn) -> None:
    # torchrun starts every rank with start_new_session=True: killing the launcher's group
    # alone would leave the ranks running.
    launcher = spawn("""
        import subprocess, sys, time
        ranks = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                  start_new_session=True) for _ in range(2)]
        print(" ".join(str(r.pid) for r in ranks), flush=True)
        time.sleep(600)
    """)
    ranks = [ProcessRef.of(int(pid)) for pid in launcher.stdout.readline().split()]
    assert all(procinfo.group_members(r.pid) == [r.pid] for r in ranks)  # own groups
    result = procinfo.kill_tree(launcher.pid, launcher, grace_s=2.0)
    assert result["exited"] and not result["killed"] and result["survivors"] == []
    wait_until(lambda: not any(r.alive() for r in ranks))

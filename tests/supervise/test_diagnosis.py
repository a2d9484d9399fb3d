# SPDX-License-Identifier: MIT
"""collect() on real stalled children that dump stacks the way the trainer does; last_lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dinowm.rundir import last_lines
from dinowm.supervise import diagnosis, procinfo
from dinowm.supervise.diagnosis import collect
from tests.support.process import Spawn, wait_until

# As dinowm.train.runtime does it: faulthandler on SIGUSR1 into <run_dir>/stacks.txt.
PRELUDE = """
import faulthandler, signal, subprocess, sys, time
stacks = open(sys.argv[1], "a")
faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True, chain=False)
"""
SLEEPER = PRELUDE + """
def wait_forever():
    print("ready", flush=True)
    while True:
        time.sleep(600)
wait_forever()
"""
SPINNER = PRELUDE + """
def spin():
    print("ready", flush=True)
    while True:
        pass
spin()
"""
ZOMBIE_PARENT = PRELUDE + """
child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, never reaped
print(child.pid, flush=True)
time.sleep(600)
"""
FAST = {"sample_s": 0.3, "stacks_wait_s": 2.0}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "stacks.txt").write_text("an older dump\n")
    (run / "train.log").write_text("".join(f"line {i}\n" for i in range(100)))
    return run


@pytest.fixture
def spawn(spawn_process: Spawn, run_dir: Path) -> Spawn:
    """Start `python -c code <run_dir>/stacks.txt` in its own session; killed at teardown."""
    return lambda code: spawn_process(code, str(run_dir / "stacks.txt"))


def asleep(pid: int) -> None:
    """Wait until pid sleeps (it prints "ready" just before it goes to sleep)."""
    wait_until(lambda: procinfo.ProcessRef.of(pid).state() == "S")


def test_sleeping_process_is_blocked_in_its_function(spawn: Spawn, run_dir: Path) -> None:
    child = spawn(SLEEPER)
    assert child.stdout.readline() == "ready\n"
    asleep(child.pid)
    diag = collect(run_dir, child.pid, log_lines=5, gpu={"util": 0}, **FAST)
    assert diag["process"]["activity"] == "blocked" and diag["process"]["state"] == "S"
    assert diag["process"]["signals_sent"] == ["SIGUSR1"] and not diag["process"]["continued"]
    assert diag["stacks"] is not None and diag["stacks_note"] is None
    assert "an older dump" not in diag["stacks"]["text"]
    frame = diag["stuck_frame"]
    assert (frame["file"], frame["function"], frame["main"]) == ("<string>", "wait_forever", True)
    assert diag["summary"].startswith("blocked (no CPU for 0.3 s) in <string>:")
    assert "wait_forever" in diag["summary"]
    assert diag["log_tail"] == [f"line {i}" for i in range(95, 100)]
    assert diag["gpu"] == {"util": 0} and diag["zombies"] == [] and diag["children"] == []
    json.dumps(diag)  # stored as an incident as it is


def test_spinning_process_is_busy(spawn: Spawn, run_dir: Path) -> None:
    child = spawn(SPINNER)
    assert child.stdout.readline() == "ready\n"
    diag = collect(run_dir, child.pid, **FAST)
    assert diag["process"]["activity"] == "busy"
    assert diag["stuck_frame"]["function"] == "spin"
    assert diag["summary"].startswith("busy: ") and "% CPU in <string>:" in diag["summary"]


def test_stopped_process_is_continued_to_dump_its_stacks(spawn: Spawn, run_dir: Path) -> None:
    child = spawn(SLEEPER)
    assert child.stdout.readline() == "ready\n"
    ref = procinfo.ProcessRef.of(child.pid)
    os.kill(child.pid, signal.SIGSTOP)
    wait_until(lambda: ref.state() == "T")
    diag = collect(run_dir, child.pid, **FAST)
    assert diag["process"]["activity"] == "stopped" and diag["process"]["state"] == "T"
    assert diag["process"]["signals_sent"] == ["SIGCONT", "SIGUSR1"]
    assert diag["process"]["continued"] and ref.state() != "T"
    assert diag["stacks"] is not None and "sent SIGCONT" in diag["stacks_note"]
    assert diag["stuck_frame"]["function"] == "wait_forever"
    assert diag["summary"].startswith("stopped (SIGSTOP) — continued to dump stacks in ")


def test_unreaped_child_is_named_in_the_summary(spawn: Spawn, run_dir: Path) -> None:
    parent = spawn(ZOMBIE_PARENT)
    dead = int(parent.stdout.readline())
    wait_until(lambda: procinfo.ProcessRef.of(dead).state() == "Z")
    asleep(parent.pid)
    diag = collect(run_dir, parent.pid, **FAST)
    comm = procinfo.threads(parent.pid)[0]["name"]
    [zombie] = diag["zombies"]
    assert zombie == {"pid": dead, "comm": zombie["comm"], "ppid": parent.pid,
                      "parent_comm": comm}
    assert zombie["comm"].startswith("python")
    assert [c["pid"] for c in diag["children"]] == [dead]
    assert (f"1 zombie [{zombie['comm']}] pid {dead} (child of pid {parent.pid} [{comm}])"
            in diag["summary"])
    assert diag["summary"].startswith("blocked")


def test_process_without_handler_gets_no_sigusr1(spawn: Spawn, run_dir: Path) -> None:
    child = spawn('import time; print("ready", flush=True); time.sleep(600)')
    assert child.stdout.readline() == "ready\n"
    diag = collect(run_dir, child.pid, **FAST)
    assert diag["stacks"] is None and diag["stuck_frame"] is None
    assert "no SIGUSR1 handler" in diag["stacks_note"]
    assert diag["process"]["signals_sent"] == [] and child.poll() is None
    assert "no Python stacks: no SIGUSR1 handler" in diag["summary"]


def test_collect_is_bounded_when_nothing_is_dumped(spawn: Spawn, run_dir: Path) -> None:
    child = spawn("""
        import signal, time
        signal.signal(signal.SIGUSR1, lambda *_: None)  # caught, but writes nothing
        print("ready", flush=True)
        time.sleep(600)
    """)
    assert child.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    diag = collect(run_dir, child.pid, stacks_wait_s=0.5, sample_s=0.3)
    assert time.monotonic() - t0 < 0.5 + 0.3 + 1.0
    assert diag["stacks"] is None and "nothing new in" in diag["stacks_note"]
    assert diag["process"]["signals_sent"] == ["SIGUSR1"]


def test_gone_and_zombie_processes(spawn: Spawn, run_dir: Path) -> None:
    child = spawn("pass")
    ref = procinfo.ProcessRef.of(child.pid)
    wait_until(lambda: ref.state() == "Z")
    diag = collect(run_dir, child.pid, **FAST)
    assert diag["process"]["activity"] == "zombie" and diag["stacks"] is None
    assert diag["summary"].startswith(f"zombie: pid {child.pid} has exited")
    child.wait(timeout=10)
    t0 = time.monotonic()  # a gone process: no sampling window, no wait for stacks
    diag = collect(run_dir, child.pid, sample_s=2.0, stacks_wait_s=4.0)
    assert time.monotonic() - t0 < 1.5
    assert diag["process"]["activity"] == "gone" and diag["start"] is None
    assert diag["summary"] == f"gone: pid {child.pid} has exited"
    assert diag["log_tail"][-1] == "line 99"


def test_classify_prefers_a_thread_stuck_in_d_state() -> None:
    def snap(*states: str) -> list[dict]:
        return [{"tid": i, "state": s} for i, s in enumerate(states)]

    assert diagnosis.classify("S", snap("S", "D"), snap("S", "D"), 0.9, 1.0) == "blocked_io"
    assert diagnosis.classify("S", snap("S", "D"), snap("S", "S"), 0.0, 1.0) == "blocked"
    assert diagnosis.classify("S", snap("S", "R"), snap("S", "R"), 0.1, 1.0) == "busy"
    assert diagnosis.classify("t", [], [], 0.0, 1.0) == "stopped"
    assert diagnosis.classify(None, [], [], 0.0, 1.0) == "gone"


DUMP = """\
Thread 0x00007f0000000002 [loader] (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 327 in wait
  File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap

Current thread 0x00007f0000000001 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 320 in wait
  File "/opt/venv/lib/python3.11/site-packages/wandb/sdk/wandb_run.py", line 7 in log
  File "/work/dinowm/train/loop.py", line 88 in step
  File "/work/dinowm/train/loop.py", line 120 in <module>
"""


def test_parse_stacks_finds_the_main_thread_and_the_callers_frame() -> None:
    threads = diagnosis.parse_stacks(DUMP)
    assert [(t["id"], t["name"], t["main"]) for t in threads] == [
        ("0x00007f0000000002", "loader", False), ("0x00007f0000000001", None, True)]
    frame = diagnosis.stuck_frame(threads)
    assert (frame["file"], frame["line"], frame["function"]) == (
        "/usr/lib/python3.11/threading.py", 320, "wait")
    assert frame["caller"]["function"] == "log"  # site-packages is not the standard library
    assert frame["text"] == "threading.py:320 wait (from wandb_run.py:7 log)"


def test_last_lines_reads_only_the_tail_of_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    with open(log, "w") as fh:
        for i in range(200_000):  # about 8 MB
            fh.write(f"step {i:07d} loss 0.{i:08d}\n")
    rchar = _bytes_read()
    tail = last_lines(log, 40)
    assert _bytes_read() - rchar < 1_000_000
    assert tail == [f"step {i:07d} loss 0.{i:08d}" for i in range(199_960, 200_000)]


def _bytes_read() -> int:
    """Bytes this process has read through read() so far (/proc/self/io rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.parametrize("block", [1, 3, 7, 64, 4096])
def test_last_lines_across_block_boundaries(tmp_path: Path, block: int) -> None:
    log = tmp_path / "train.log"
    lines = [f"{'x' * (i % 11)}é{i}" for i in range(50)]
    log.write_text("\n".join(lines))  # no newline at the end
    assert last_lines(log, 7, block=block) == lines[-7:]
    assert last_lines(log, 500, block=block) == lines
    assert last_lines(log, 0, block=block) == []
    log.write_text("")
    assert last_lines(log, 3, block=block) == []


def test_last_lines_cuts_a_line_longer_than_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("first\n" + "y" * 5000 + "\nlast\n")
    assert last_lines(log, 2, block=256, max_bytes=1024) == ["…" + "y" * 1018, "last"]


def test_no_torch_in_the_supervisors_diagnosis() -> None:
    code = "import sys, dinowm.supervise.diagnosis; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

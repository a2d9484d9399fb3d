# SPDX-License-Identifier: MIT
"""Why a trainer stalled: process activity, Python stacks, zombies, log tail, one-line summary."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dinowm import rundir
from dinowm.rundir import last_lines
from dinowm.supervise import procinfo
from dinowm.supervise.bounded import call_with_timeout

T = TypeVar("T")

MAX_DUMP_BYTES = 256 * 1024
STEP_S = 0.25  # budget of each /proc or file step that a stuck kernel could block
POLL_S = 0.02
SETTLE_S = 0.1  # a dump is complete once stacks.txt stopped growing for this long
STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "uninterruptible (disk or driver)",
    "T": "stopped",
    "t": "stopped by a tracer",
    "Z": "zombie",
    "X": "dead",
    "I": "idle",
}
THREAD_RE = re.compile(
    r"^(Current thread|Thread) (0x[0-9a-fA-F]+)(.*?)\s*"
    r"\(most recent call first\):\s*$"
)
FRAME_RE = re.compile(r'^\s+File "(.*)", line (\d+|\?\?\?) in (.*?)\s*$')
STDLIB_RE = re.compile(r"^<frozen |/lib/python\d\.\d+/(?!(site|dist)-packages/)")


def parse_stacks(text: str) -> list[dict[str, Any]]:
    """faulthandler's dump → [{id, name, current, main, frames: [{file, line, function}]}].

    Frames are innermost first, as faulthandler writes them. The main thread is the last one
    listed whose outermost frame is not threading's _bootstrap (new threads are listed first).
    """
    threads: list[dict[str, Any]] = []
    for line in text.splitlines():
        head = THREAD_RE.match(line)
        if head or line.startswith("Stack (most recent call first)"):
            threads.append(
                {
                    "id": head.group(2) if head else None,
                    "name": (head.group(3).strip(" []") or None) if head else None,
                    "current": head is not None and head.group(1) == "Current thread",
                    "main": False,
                    "frames": [],
                }
            )
        elif threads and (frame := FRAME_RE.match(line)):
            number = frame.group(2)
            threads[-1]["frames"].append(
                {
                    "file": frame.group(1),
                    "line": int(number) if number.isdigit() else None,
                    "function": frame.group(3),
                }
            )
    started = [
        t
        for t in threads
        if not (t["frames"] and t["frames"][-1]["function"].startswith("_bootstrap"))
    ]
    if started or threads:
        (started or threads)[-1]["main"] = True
    return threads


def _where(frame: dict[str, Any]) -> str:
    return f"{os.path.basename(frame['file'])}:{frame['line']} {frame['function']}"


def stuck_frame(threads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Innermost frame of the main thread (or of the first thread with frames), with text.

    When that frame is in the standard library, `caller` is the innermost frame outside it:
    `threading.py:327 wait` says less than the line of the trainer that waits.
    """
    ordered = sorted(threads, key=lambda t: not t["main"])
    thread = next((t for t in ordered if t["frames"]), None)
    if thread is None:
        return None
    frames = thread["frames"]
    caller = None
    if STDLIB_RE.search(frames[0]["file"]):
        caller = next((f for f in frames if not STDLIB_RE.search(f["file"])), None)
    text = _where(frames[0]) + (f" (from {_where(caller)})" if caller else "")
    return {
        **frames[0],
        "thread": thread["id"],
        "main": thread["main"],
        "caller": caller,
        "text": text,
    }


def classify(
    state: str | None,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    cpu_used_s: float,
    window_s: float,
) -> str:
    """gone, zombie, stopped, blocked_io (a thread in D in both samples), busy or blocked."""
    if state is None:
        return "gone"
    if state in procinfo.GONE_STATES:
        return "zombie"
    if state in ("T", "t"):
        return "stopped"

    def in_both(letter: str) -> bool:
        earlier = {t["tid"] for t in before if t["state"] == letter}
        return any(t["state"] == letter and t["tid"] in earlier for t in after)

    if in_both("D"):
        return "blocked_io"
    if cpu_used_s >= 0.5 * window_s or in_both("R"):
        return "busy"
    return "blocked"


def _bounded(fn: Callable[[], T], timeout: float, what: str) -> tuple[T | None, str | None]:
    """(value, None), or (None, reason) when fn failed or a stuck kernel call held it."""
    try:
        return call_with_timeout(fn, timeout, what), None
    except TimeoutError:
        return None, f"{what} did not answer within {timeout:g} s"
    except OSError as exc:
        return None, f"{what}: {exc}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _await_dump(path: Path, before: int, wait_s: float) -> str | None:
    """New text in stacks.txt once it stops growing; None if nothing came within wait_s."""
    deadline = time.monotonic() + wait_s
    seen, changed = before, time.monotonic()
    while time.monotonic() < deadline:
        size = _size(path)
        if size < before:  # replaced or truncated meanwhile
            before = 0
        if size != seen:
            seen, changed = size, time.monotonic()
        elif seen > before and time.monotonic() - changed >= SETTLE_S:
            break
        time.sleep(POLL_S)
    if seen <= before:
        return None
    with open(path, "rb") as fh:
        fh.seek(before)
        return fh.read(min(seen - before, MAX_DUMP_BYTES)).decode("utf-8", "replace")


def _stacks(
    ref: procinfo.ProcessRef, path: Path, stopped: bool, wait_s: float, sent: list[str]
) -> tuple[str | None, str | None]:
    """SIGCONT a stopped process, SIGUSR1 it and read faulthandler's dump: (text, note)."""
    if not procinfo.catches(ref.pid, signal.SIGUSR1):
        return None, (
            "no SIGUSR1 handler (faulthandler not registered): not sent, its default "
            "action would kill the process"
        )
    before, error = _bounded(lambda: _size(path), STEP_S, str(path))
    if error:
        return None, error
    if stopped:
        if not ref.send(signal.SIGCONT):
            return None, "process exited before SIGCONT"
        sent.append("SIGCONT")
    if not ref.send(signal.SIGUSR1):
        return None, "process exited before SIGUSR1"
    sent.append("SIGUSR1")
    text, error = _bounded(
        lambda: _await_dump(path, before or 0, wait_s), wait_s + STEP_S, str(path)
    )
    if text is None:
        return None, error or f"nothing new in {path} within {wait_s:g} s of SIGUSR1"
    if stopped:
        return text, "process was stopped: sent SIGCONT so that SIGUSR1 could dump; it runs again"
    return text, None


def _cpu(pid: int) -> float:
    try:
        return procinfo.cpu_seconds(pid)
    except ProcessLookupError:
        return 0.0


def _sample(ref: procinfo.ProcessRef | None, sample_s: float) -> dict[str, Any]:
    """State, threads and CPU time used over sample_s, classified as an activity."""
    state = ref.state() if ref else None
    before = procinfo.threads(ref.pid) if ref and state else []
    cpu_before = _cpu(ref.pid) if ref and state else 0.0
    t0 = time.monotonic()
    if ref and state not in (None, *procinfo.GONE_STATES):
        time.sleep(sample_s)
    window = time.monotonic() - t0
    running = ref is not None and ref.state() is not None
    cpu_s = _cpu(ref.pid) if ref and running else None
    used = max(0.0, cpu_s - cpu_before) if cpu_s is not None else 0.0
    after = procinfo.threads(ref.pid) if ref and running else []
    ticks = {t["tid"]: t["ticks"] for t in before}
    return {
        "state": state,
        "state_name": STATE_NAMES.get(state or "", state),
        "activity": classify(state, before, after, used, window),
        "cpu_s": cpu_s,
        "cpu_used_s": round(used, 3),
        "window_s": round(window, 3),
        "cpu_percent": round(100 * used / window, 1) if window > 0 else 0.0,
        "threads": [
            {
                "tid": t["tid"],
                "name": t["name"],
                "state": t["state"],
                "wchan": t["wchan"],
                "cpu_used_s": (t["ticks"] - ticks.get(t["tid"], t["ticks"])) / procinfo.TICKS,
            }
            for t in after
        ],
        "signals_sent": [],
        "continued": False,
    }


def _log_tail(path: Path, n: int) -> tuple[list[str], str | None]:
    if not path.exists():
        return [], f"{path} does not exist"
    return last_lines(path, n), None


def collect(
    run_dir: Path,
    pid: int,
    *,
    stacks_wait_s: float = 3.0,
    sample_s: float = 1.0,
    log_lines: int = 40,
    gpu: dict | None = None,
    stacks_path: Path | None = None,
) -> dict[str, Any]:
    """The stall diagnosis stored as an incident (a JSON-able dict); every step is bounded.

    stacks_path: where the process dumps its stacks on SIGUSR1 (a rank other than 0 has its own
    file; the default is the run's stacks.txt)."""
    t0 = time.monotonic()
    run_dir = Path(run_dir)
    try:
        ref: procinfo.ProcessRef | None = procinfo.ProcessRef.of(pid)
    except ProcessLookupError:
        ref = None
    process = _sample(ref, sample_s)
    activity = process["activity"]
    stacks: dict[str, Any] | None = None
    note: str | None = f"process is {activity}: no stacks"
    if ref and activity not in ("gone", "zombie"):
        text, note = _stacks(
            ref,
            stacks_path or run_dir / rundir.STACKS,
            activity == "stopped",
            stacks_wait_s,
            process["signals_sent"],
        )
        process["continued"] = "SIGCONT" in process["signals_sent"]
        if text is not None:
            stacks = {"text": text, "threads": parse_stacks(text)}
    family, family_note = _bounded(
        lambda: (procinfo.zombies(pid), procinfo.descendants(pid)), STEP_S, "/proc"
    )
    result, error = _bounded(
        lambda: _log_tail(run_dir / rundir.LOG, log_lines), STEP_S, str(run_dir / rundir.LOG)
    )
    tail, log_note = result if result else ([], error)
    out = {
        "pid": pid,
        "start": ref.start if ref else None,
        "collected_at": time.time(),
        "process": process,
        "stacks": stacks,
        "stacks_note": note,
        "stuck_frame": stuck_frame(stacks["threads"]) if stacks else None,
        "zombies": family[0] if family else [],
        "children": family[1] if family else [],
        "proc_note": family_note,
        "log_tail": tail,
        "log_note": log_note,
        "gpu": gpu,
    }
    out["summary"] = summary(out)
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def summary(diag: dict[str, Any]) -> str:
    """One line a person can act on, from a collect() result."""
    proc, stuck, pid = diag["process"], diag["stuck_frame"], diag["pid"]
    activity = proc["activity"]
    where = f" in {stuck['text']}" if stuck else ""
    if activity == "gone":
        line = f"gone: pid {pid} has exited"
    elif activity == "zombie":
        line = f"zombie: pid {pid} has exited but its parent has not reaped it"
    elif activity == "stopped":
        how = " — continued to dump stacks" if proc["continued"] else ""
        line = f"stopped (SIGSTOP){how}{where}"
    elif activity == "blocked_io":
        stuck_threads = [t for t in proc["threads"] if t["state"] == "D"]
        names = ", ".join(f"{t['tid']} ({t['wchan'] or '?'})" for t in stuck_threads[:3])
        line = f"blocked on I/O{where}: threads in D state {names}; SIGKILL may not finish"
    elif activity == "busy":
        line = f"busy: {proc['cpu_percent']:.0f}% CPU{where}"
    else:
        used = (
            "no CPU"
            if proc["cpu_used_s"] < 0.05 * proc["window_s"]
            else f"{proc['cpu_percent']:.0f}% CPU"
        )
        line = f"blocked ({used} for {proc['window_s']:.1f} s){where}"
    if not stuck and activity in ("stopped", "blocked_io", "busy", "blocked"):
        line += f"; no Python stacks: {diag['stacks_note']}"
    others = [z for z in diag["zombies"] if z["pid"] != pid]
    if others:
        listed = ", ".join(
            f"[{z['comm']}] pid {z['pid']} (child of pid {z['ppid']} [{z['parent_comm']}])"
            for z in others[:3]
        )
        line += f"; {len(others)} zombie{'s' if len(others) > 1 else ''} {listed}"
    return line

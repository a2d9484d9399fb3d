# SPDX-License-Identifier: MIT
"""A run on several GPUs seen from the supervisor: which rank failed first, and how.

torchrun (`--max-restarts=0`) ends every rank when one fails and exits 1 itself; the rank that
failed first, its exit code or signal, is in the report torchrun prints to train.log
("Root Cause (first observed failure)").
"""

from __future__ import annotations

import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.supervise import diagnosis, watchdog

_ROOT = re.compile(r"Root Cause \(first observed failure\):(.*?)(?:={20,}|\Z)", re.S)
_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)", re.M)
_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)\s*\(pid:\s*(\d+)\)", re.M)


@dataclass(frozen=True)
class RankFailure:
    """The first rank that failed, as torchrun saw it."""

    rank: int
    exit_code: int
    pid: int | None = None

    @property
    def signal_name(self) -> str | None:
        """'SIGKILL' when the rank died of a signal."""
        if self.exit_code < 0 and -self.exit_code in signal.valid_signals():
            return signal.Signals(-self.exit_code).name
        return None

    def describe(self) -> str:
        """'rank 1 (pid 4242) killed by SIGKILL' or 'rank 1 (pid 4242) exited with code 3'."""
        how = (
            f"killed by {self.signal_name}"
            if self.signal_name
            else f"exited with code {self.exit_code}"
        )
        return f"rank {self.rank}{f' (pid {self.pid})' if self.pid else ''} {how}"


def first_failure(log_lines: list[str]) -> RankFailure | None:
    """The root cause of torchrun's last failure report in these lines, or None."""
    text = "\n".join(log_lines)
    found = _ROOT.findall(text)
    if not found:
        return None
    block = found[-1]
    rank, code = _RANK.search(block), _EXIT.search(block)
    if rank is None or code is None:
        return None
    return RankFailure(int(rank.group(1)), int(code.group(1)), int(code.group(2)))


def lagging(beats: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rank behind the others: the lowest step; among equals, the one not waiting in a
    collective, then the one silent longest."""
    if not beats:
        return None
    return min(
        beats, key=lambda b: (b.get("step") or 0, bool(b.get("collective")), b.get("t") or 0)
    )


# How a silent rank's process looks, as the incident's subject says it.
STATES = {
    "stopped": "stopped (SIGSTOP)",
    "gone": "gone",
    "zombie": "a zombie",
    "busy": "hung, busy on the CPU",
    "blocked": "hung, blocked",
    "blocked_io": "hung, blocked on I/O",
}


def diagnose(
    run_dir: Path,
    beats: list[dict[str, Any]],
    gpu: dict | None,
    sample_s: float = 1.0,
    silent: int | None = None,
) -> dict[str, Any]:
    """The stall diagnosis of a run on several ranks: the silent rank first (`silent`, the
    watchdog's, else the one behind), the ranks waiting for it in a collective named as
    waiting, then every rank's process, stacks and place."""
    ranks = [_rank(run_dir, beat, gpu, sample_s) for beat in beats]
    subject_rank = silent if silent is not None else _culprit(ranks, beats)
    subject = next((r for r in ranks if r["rank"] == subject_rank), None)
    lines = [
        f"rank {r['rank']} (pid {r['pid']}) at step {r['step']} in {_where(r)}, silent "
        f"{r['silent_s']:.0f} s: {r['summary']}"
        for r in ranks
    ]
    waiting = [r for r in ranks if r["collective"] and r is not subject]
    if subject is None:
        lead = "no rank heartbeats"
    else:
        lead = "; ".join(
            [_subject(subject)]
            + [
                f"rank {r['rank']} (pid {r['pid']}) waiting for it in {r['collective']} for "
                f"{r['silent_s']:.0f} s"
                for r in waiting
            ]
        )
    return {
        "ranks": ranks,
        "silent_rank": subject_rank,
        "waiting_ranks": [r["rank"] for r in waiting],
        "headline": lead,
        "details_line": "; ".join(lines),
        "summary": f"{lead}; " + "; ".join(lines),
        "log_tail": rundir.log_tail(run_dir, 40),
    }


def _culprit(ranks: list[dict[str, Any]], beats: list[dict[str, Any]]) -> int | None:
    """The rank whose process is stopped or gone (it will not move again on its own), else
    the one behind."""
    for r in ranks:
        if (r.get("process") or {}).get("activity") in ("stopped", "gone", "zombie"):
            return int(r["rank"])
    behind = lagging(beats)
    return int(behind["rank"]) if behind else None


def _rank(run_dir: Path, beat: dict[str, Any], gpu: dict | None, sample_s: float) -> dict[str, Any]:
    """One rank's process, stacks and place (a rank on another node: what its beat says)."""
    here = socket.gethostname()
    if beat.get("host") not in (None, here):  # a rank on another node of a Slurm job
        diag: dict[str, Any] = {
            "pid": beat["pid"],
            "summary": f"on node {beat['host']}: its process is not visible from {here}",
            "stacks": None,
            "process": {"activity": "elsewhere"},
        }
    else:
        diag = diagnosis.collect(
            run_dir,
            beat["pid"],
            gpu=gpu if beat["rank"] == 0 else None,
            sample_s=sample_s,
            log_lines=0,
            stacks_path=rundir.rank_stacks(run_dir, beat["rank"]),
        )
    now = time.time()  # after the process was sampled
    return {
        **diag,
        "rank": beat["rank"],
        "host": beat.get("host"),
        "step": beat.get("step"),
        "phase": beat.get("phase"),
        "collective": beat.get("collective"),
        "silent_s": round(now - float(beat.get("t") or now), 1),
    }


def _subject(r: dict[str, Any]) -> str:
    """'rank 1 (pid 42) stopped (SIGSTOP), silent 31 s at step 320 in phase train'."""
    activity = (r.get("process") or {}).get("activity")
    state = STATES.get(activity or "")
    node = f" on node {r['host']}" if activity == "elsewhere" and r.get("host") else ""
    return (
        f"rank {r['rank']} (pid {r['pid']}){node}{f' {state}' if state else ''}, silent "
        f"{r['silent_s']:.0f} s at step {r['step']} in phase {r['phase'] or '?'}"
    )


def last_places(failed: RankFailure, beats: list[dict[str, Any]]) -> str:
    """'rank 1 (pid 42) killed by SIGKILL first; last heartbeats: rank 0 at step 6 (train,
    waiting in grad_allreduce), rank 1 at step 6 (train)'. When the first to fail timed out
    waiting in a collective, the rank it waited for leads: 'rank 1 (pid 43) silent at step 6
    in phase train while rank 0 waited for it in grad_allreduce; ...'."""
    places = [f"rank {b['rank']} at step {b.get('step')} ({_where(b)})" for b in beats]
    line = f"{failed.describe()} first; last heartbeats: {', '.join(places) or 'none'}"
    mine = next((b for b in beats if b["rank"] == failed.rank), {})
    others = [b for b in watchdog.awaited(beats) if b["rank"] != failed.rank]
    if mine.get("failed_in") and others:
        who = watchdog.quietest(others, 0.0)
        line = (
            f"rank {who['rank']} (pid {who.get('pid')}) silent at step {who.get('step')} in "
            f"phase {who.get('phase') or '?'} while rank {failed.rank} waited for it in "
            f"{mine['failed_in']}; {line}"
        )
    return line


def _where(beat: dict[str, Any]) -> str:
    """'train, waiting in grad_allreduce' or 'failed in grad_allreduce, <its error>'."""
    how = beat.get("phase") or "?"
    if beat.get("collective"):
        how += f", waiting in {beat['collective']}"
    if beat.get("failed_in"):
        how += f" in {beat['failed_in']}"
    if (beat.get("error") or {}).get("message"):
        how += f", {beat['error']['message'][:120]}"
    return how

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
from dinowm.supervise import diagnosis

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


def diagnose(
    run_dir: Path, beats: list[dict[str, Any]], gpu: dict | None, sample_s: float = 1.0
) -> dict[str, Any]:
    """The stall diagnosis of a run on several ranks: every rank's process, stacks and place,
    the lagging rank named against the others."""
    now = time.time()
    ranks = []
    here = socket.gethostname()
    for beat in beats:  # the run's log tail once, below, not once per rank
        if beat.get("host") not in (None, here):  # a rank on another node of a Slurm job
            diag = {
                "pid": beat["pid"],
                "summary": f"on node {beat['host']}: its process is not visible from {here}",
                "stacks": None,
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
        ranks.append(
            {
                **diag,
                "rank": beat["rank"],
                "step": beat.get("step"),
                "phase": beat.get("phase"),
                "collective": beat.get("collective"),
                "silent_s": round(now - float(beat.get("t") or now), 1),
            }
        )
    behind = lagging(beats)
    lines = [
        f"rank {r['rank']} (pid {r['pid']}) at step {r['step']} in {_where(r)}, silent "
        f"{r['silent_s']:.0f} s: {r['summary']}"
        for r in ranks
    ]
    lead = f"rank {behind['rank']} lagging" if behind is not None else "no rank heartbeats"
    return {
        "ranks": ranks,
        "lagging_rank": behind["rank"] if behind else None,
        "summary": f"{lead}; " + "; ".join(lines),
        "log_tail": rundir.log_tail(run_dir, 40),
    }


def last_places(failed: RankFailure, beats: list[dict[str, Any]]) -> str:
    """'rank 1 (pid 42) killed by SIGKILL first; last heartbeats: rank 0 at step 6 (train,
    waiting in grad_allreduce), rank 1 at step 6 (train)'."""
    places = [f"rank {b['rank']} at step {b.get('step')} ({_where(b)})" for b in beats]
    return f"{failed.describe()} first; last heartbeats: {', '.join(places) or 'none'}"


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

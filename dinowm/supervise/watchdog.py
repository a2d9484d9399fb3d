# SPDX-License-Identifier: MIT
"""Pure decisions of the supervisor: is the trainer making progress, and what to do after it
ends."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from dinowm.schema import WatchdogConfig

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_OOM, EXIT_DISK, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
NO_PROGRESS_LIMIT = 3  # consecutive attempts without a new step before giving up
HEALTHY_STEPS = 200  # an attempt with this many steps resets the backoff


@dataclass
class Progress:
    """What the supervisor knows about the current attempt, fed from ingested events."""

    attempt_started: float
    phase: str = "startup"
    phase_since: float = 0.0
    last_beat: float = 0.0
    first_step: int | None = None
    last_step: int | None = None
    step_times: deque = field(default_factory=lambda: deque(maxlen=500))

    def observe(self, event: dict, now: float) -> None:
        """Update from one trainer event (its arrival time `now` counts as the beat)."""
        kind = event.get("type")
        if kind == "phase":
            self.phase, self.phase_since = event.get("phase") or self.phase, now
        elif kind == "heartbeat":
            if "step" in event:
                if self.phase != "train":
                    self.phase, self.phase_since = "train", now
                self.last_step = event["step"]
                if self.first_step is None:
                    self.first_step = event["step"]
                if event.get("step_s") is not None:
                    self.step_times.append(float(event["step_s"]))
        elif kind == "start":
            self.phase, self.phase_since = "startup", now
        self.last_beat = now

    @property
    def steps(self) -> int:
        """Steps made in this attempt."""
        if self.first_step is None or self.last_step is None:
            return 0
        return self.last_step - self.first_step + 1


@dataclass(frozen=True)
class Verdict:
    """Whether the trainer is stalled, and against which budget."""

    stalled: bool
    phase: str
    age_s: float
    limit_s: float
    rank: int | None = None  # the silent rank, when one rank of several went quiet

    def describe(self) -> str:
        who = f"rank {self.rank}: " if self.rank is not None else ""
        return (
            f"{who}no progress for {self.age_s:.0f} s in phase '{self.phase}' "
            f"(limit {self.limit_s:.0f} s)"
        )


def p99(values: deque) -> float:
    """99th percentile (nearest rank) of recent step times."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def step_limit(progress: Progress, cfg: WatchdogConfig) -> float:
    """Adaptive training budget: max(floor, factor x p99 step time)."""
    return max(cfg.heartbeat_floor_s, cfg.heartbeat_factor * p99(progress.step_times))


def check(progress: Progress, now: float, cfg: WatchdogConfig) -> Verdict:
    """Stalled when the time since the last sign of life exceeds the current phase's budget."""
    if progress.last_step is None and progress.phase in ("startup", "train"):
        age = now - progress.attempt_started  # until the first step: the start-up budget
        return Verdict(age > cfg.startup_s, "startup", age, cfg.startup_s)
    budgets = {
        "paused": max(cfg.heartbeat_floor_s, 30.0),
        "validation": cfg.validation_s,
        "checkpoint": cfg.checkpoint_s,
    }
    limit = budgets.get(progress.phase) or step_limit(progress, cfg)
    age = now - progress.last_beat
    return Verdict(age > limit, progress.phase, age, limit)


def check_ranks(progress: Progress, beats: list[dict], now: float, cfg: WatchdogConfig) -> Verdict:
    """A run on several ranks: stalled when a rank is silent while others wait for it in a
    collective longer than a step may take (whatever their phase: a frozen rank is found
    before the collective's own timeout), when rank 0's events stall, or when any rank's own
    heartbeat is older than its phase's budget. The silent rank is named, not one waiting."""
    frozen = frozen_rank(progress, beats, now, cfg)
    if frozen is not None:
        return frozen
    run = check(progress, now, cfg)
    if run.stalled or progress.last_step is None:
        silent = [b for b in beats if not b.get("collective")]
        if run.stalled and silent and len(silent) < len(beats):  # the others wait for it
            rank = quietest(silent, now)["rank"]
            return Verdict(True, run.phase, run.age_s, run.limit_s, rank=rank)
        return run
    budgets = {
        "validation": cfg.validation_s,
        "checkpoint": cfg.checkpoint_s,
        "startup": cfg.startup_s,
    }
    worst = run
    for beat in beats:
        phase = beat.get("phase") or "train"
        limit = budgets.get(phase) or step_limit(progress, cfg)
        age = now - float(beat.get("t") or now)
        if age > limit and (not worst.stalled or age - limit > worst.age_s - worst.limit_s):
            worst = Verdict(True, phase, age, limit, rank=beat["rank"])
    return worst


def frozen_rank(
    progress: Progress, beats: list[dict], now: float, cfg: WatchdogConfig
) -> Verdict | None:
    """The rank the others wait for: some rank inside a collective (or failed in one, on its
    timeout) for longer than a step may take, another not in one; the one silent longest.
    None while training has not begun."""
    if progress.last_step is None:
        return None
    waiting = [b for b in beats if waits(b)]
    silent = awaited(beats)
    if not waiting or not silent:
        return None
    limit = step_limit(progress, cfg)
    waited = max(now - float(b.get("t") or now) for b in waiting)
    if waited <= limit:
        return None
    rank = quietest(silent, now)
    age = now - float(rank.get("t") or now)
    return Verdict(True, rank.get("phase") or "train", age, limit, rank=rank["rank"])


def waits(beat: dict) -> bool:
    """A rank inside a collective, or failed in one on its timeout: it waits for another."""
    return bool(beat.get("collective") or beat.get("failed_in"))


def awaited(beats: list[dict]) -> list[dict]:
    """The ranks the waiting ones may be waiting for: neither waiting nor failed."""
    return [b for b in beats if not waits(b) and b.get("phase") != "failed"]


def quietest(beats: list[dict], now: float) -> dict:
    """The heartbeat written longest ago (one without a time counts as written `now`)."""
    return min(beats, key=lambda b: float(b.get("t") or now))


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    kind: str  # completed | stopped | config | oom | disk_full | crash | signal | stall | lost_gpu
    # | locked | rendezvous (a job's nodes could not meet)
    message: str
    steps: int  # optimiser steps made in this attempt
    exit_code: int | None = None
    micro_batch: int | None = None
    last_step: int | None = None  # the run's global step when the attempt ended


@dataclass(frozen=True)
class Decision:
    """What the supervisor does next."""

    action: str  # finish | resume
    status: str | None = None  # final status when finishing
    reason: str = ""
    delay_s: float = 0.0
    halve_batch: bool = False


def _advanced(outcome: Outcome, before: list[Outcome]) -> bool:
    """An attempt made progress when it reached a global step no earlier attempt reached."""
    if outcome.steps <= 0 or outcome.last_step is None:
        return False
    best = max((o.last_step for o in before if o.last_step is not None), default=-1)
    return outcome.last_step > best


def classify(
    exit_code: int, end_status: str | None, error: dict | None, signal_name: str | None
) -> tuple[str, str]:
    """(outcome kind, message) from the trainer's exit code, end event and error event."""
    message = (error or {}).get("message", "")
    if exit_code == EXIT_OK and end_status:
        return end_status, end_status
    if end_status == "completed":  # every epoch trained and checkpointed before the end event:
        # a signal in the launcher's teardown (a Slurm time limit falling there) loses nothing
        return "completed", (
            f"completed (its end event was written; the process then exited "
            f"{f'by {signal_name}' if signal_name else f'with code {exit_code}'})"
        )
    if exit_code == EXIT_OK:  # the trainer always ends with its end event; something else ended it
        return "crash", (
            "trainer exited 0 without its end event (ended from outside, e.g. its "
            "Slurm step was cancelled)"
        )
    if exit_code == EXIT_CONFIG:
        return "config", message or "configuration or data error"
    if exit_code == EXIT_OOM:
        return "oom", message or "CUDA out of memory"
    if exit_code == EXIT_DISK:
        return "disk_full", message or "disk full"
    if exit_code == EXIT_LOCKED:
        return "locked", "another trainer holds the run folder (see train.log)"
    if exit_code < 0:
        name = signal_name or f"signal {-exit_code}"
        hint = (
            " (the host OOM killer or a user; see `dmesg | grep -i oom`)"
            if name == "SIGKILL"
            else ""
        )
        return "signal", f"trainer killed by {name}{hint}"
    return "crash", message or f"trainer exited with code {exit_code}"


def decide(
    outcome: Outcome, history: list[Outcome], cfg: WatchdogConfig, automatic_resumes: int
) -> Decision:
    """Resume, halve the batch, or finish with a status, from the outcome and earlier attempts."""
    if outcome.kind in ("completed", "stopped"):
        return Decision("finish", outcome.kind, outcome.message)
    if outcome.kind == "config":
        return Decision("finish", "failed", f"{outcome.message} (not retried)")
    if outcome.kind in ("locked", "rendezvous"):  # another attempt meets the same lock or nodes
        return Decision("finish", "failed", f"{outcome.message} (not retried)")
    if outcome.kind == "disk_full":
        return Decision("finish", "failed", f"disk full: {outcome.message}")
    if outcome.kind == "lost_gpu":
        return Decision("finish", "failed", f"GPU lost, not resumed: {outcome.message}")
    if outcome.kind == "oom":
        if cfg.oom == "stop" or (outcome.micro_batch or 1) <= 1:
            mb = outcome.micro_batch or 0
            hint = (
                f"; try training.batch_size={max(mb // 2, 1)} or watchdog.oom=halve"
                if mb > 1
                else "; even a micro-batch of 1 does not fit this GPU"
            )
            return Decision("finish", "failed", f"CUDA out of memory at micro-batch {mb}{hint}")
        return Decision(
            "resume",
            reason=f"CUDA out of memory at micro-batch "
            f"{outcome.micro_batch}: halving it, doubling grad_accum",
            halve_batch=True,
        )
    # crash, signal, stall: resume while attempts remain and attempts make progress
    if outcome.kind in ("crash", "signal") and cfg.on_crash == "stop":
        return Decision("finish", "failed", f"{outcome.message} (watchdog.on_crash=stop)")
    recent = [*history, outcome]
    stuck = 0
    for i in range(len(recent) - 1, -1, -1):
        if _advanced(recent[i], recent[:i]):
            break
        stuck += 1
    if stuck >= NO_PROGRESS_LIMIT:
        return Decision(
            "finish", "failed", f"no progress in {stuck} attempts in a row; last: {outcome.message}"
        )
    if automatic_resumes >= cfg.max_attempts:
        return Decision(
            "finish",
            "failed",
            f"gave up after {automatic_resumes} automatic resumes; last: {outcome.message}",
        )
    failures = 0
    for o in reversed(recent):
        if o.steps >= HEALTHY_STEPS:
            break
        failures += 1
    delay = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** max(failures - 1, 0))
    return Decision("resume", reason=outcome.message, delay_s=delay)

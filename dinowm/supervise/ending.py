# SPDX-License-Identifier: MIT
"""An attempt's end as its supervisor records it and acts on it: the trainer's exit classified
(torchrun's first failing rank named) with its crash and ranks incidents, a stall's incident,
the OOM policy's smaller micro-batch written into the spec, and the next step an alert names."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.config import to_dict, with_values
from dinowm.rundir import committed_checkpoints, read_spec, write_spec
from dinowm.schema import RunConfig
from dinowm.store import Store
from dinowm.supervise import ranks
from dinowm.supervise.attempt import AttemptState, rank_beats
from dinowm.supervise.ranks import RankFailure
from dinowm.supervise.watchdog import Decision, Outcome, Verdict, classify

# failures of the trainer's own that a stop does not explain (its error event's kind)
_OWN_FAILURES = ("config", "oom", "disk_full")


def exit_outcome(
    store: Store,
    run_id: str,
    run_dir: Path,
    a: AttemptState,
    rc: int,
    failed: RankFailure | None,
    node: str | None = None,
) -> Outcome:
    """The trainer's exit code `rc` classified with its last events (and, with several ranks,
    the rank that failed first, on `node` in a job of several); where the ranks were and a
    crash recorded as incidents."""
    stopped = _stopped(a, rc)
    if stopped is not None:
        return stopped
    sig = signal.Signals(-rc).name if rc < 0 and -rc in signal.valid_signals() else None
    error = a.error
    if failed is not None:  # torchrun exits 1 whatever happened: the rank's own code counts
        rc, sig = failed.exit_code, failed.signal_name
        if failed.rank != 0:  # rank 0's error then only echoes the loss of its peer
            error = None
    kind, message = classify(rc, a.end, error, sig)
    where = f" on node {node}" if node else ""
    if failed is not None and error is None:  # name the rank that failed first
        who = f"rank {failed.rank} (pid {failed.pid}){where}"
        message = (
            message.replace("trainer", who, 1)
            if message.startswith("trainer")
            else f"{who}: {message}"
        )
    beats = rank_beats(run_dir, a) if failed is not None else []
    if failed is not None:  # where every rank was when the group went down
        store.add_incident(
            run_id,
            "ranks",
            f"{f'on node {node}: ' if node else ''}{ranks.last_places(failed, beats)}",
            {"first_failure": failed.__dict__, "node": node, "ranks": beats},
            attempt=a.number,
            step=a.progress.last_step,
        )
    if kind in ("signal", "crash") and error is None:
        store.add_incident(
            run_id,
            "crash",
            message,
            {
                "exit_code": rc,
                "log_tail": rundir.log_tail(run_dir, 30),
                "rank": failed.rank if failed else None,
                "node": node,
                "ranks": beats,
            },
            step=a.progress.last_step,
        )
    return a.outcome(kind, message, micro_batch=a.cfg.micro_batch)


def _stopped(a: AttemptState, rc: int) -> Outcome | None:
    """The end of an attempt this supervisor asked to stop, unless the trainer failed on its
    own: checkpointed (the launchers' codes, torchrun 1 and srun 143, say only how they ended),
    or before it could checkpoint (starting, in its rendezvous, or killed past the stop's
    budget): the stop's doing, no crash; the latest checkpoint stands."""
    if a.stop_sent is None:
        return None
    if a.end == "stopped":
        return a.outcome("stopped", f"stopped (exit code {rc})", micro_batch=a.cfg.micro_batch)
    if (a.error or {}).get("kind") in _OWN_FAILURES:
        return None
    when = "during its start" if a.progress.last_step is None else "before its checkpoint"
    return a.outcome("stopped", f"stopped {when} (exit code {rc})", micro_batch=a.cfg.micro_batch)


def stall_outcome(
    store: Store,
    run_id: str,
    verdict: Verdict,
    a: AttemptState,
    diag: dict[str, Any],
    killed: dict[str, Any],
) -> Outcome:
    """A stalled attempt, diagnosed and killed: its incident recorded."""
    if "silent_rank" in diag:  # several ranks: the silent one is the subject
        message = (
            f"stall: {diag['headline']} (limit {verdict.limit_s:.0f} s); {diag['details_line']}"
        )
    else:
        message = f"stall: {verdict.describe()}; {diag.get('summary', '')}"
    store.add_incident(
        run_id,
        "stall",
        message,
        {**diag, "verdict": verdict.__dict__, "kill": killed},
        attempt=a.number,
        step=a.progress.last_step,
    )
    return a.outcome("stall", message)


def halve_batch(store: Store, run_id: str, run_dir: Path, cfg: RunConfig) -> None:
    """OOM policy: same effective batch, half the micro-batch (grad_accum doubled)."""
    t = cfg.training
    new = with_values(cfg, training__grad_accum=min(t.grad_accum * 2, t.batch_size))
    spec = read_spec(run_dir)
    spec["config"] = to_dict(new)
    write_spec(run_dir, spec)
    store.update_run(run_id, grad_accum=new.training.grad_accum, micro_batch=new.micro_batch)
    store.add_incident(
        run_id,
        "oom_policy",
        f"micro-batch {cfg.micro_batch} → {new.micro_batch} "
        f"(grad_accum {t.grad_accum} → {new.training.grad_accum}, "
        f"batch {t.batch_size} kept)",
        {
            "batch_size": t.batch_size,
            "micro_batch_before": cfg.micro_batch,
            "micro_batch_after": new.micro_batch,
        },
    )


def next_step(run_dir: Path, decision: Decision) -> str:
    """'resuming from epoch 2' (with half the micro-batch) or why the run ends."""
    if decision.action != "resume":
        return f"not resumed: {decision.reason}"
    epochs = [c["epoch"] for c in committed_checkpoints(run_dir) if c.get("epoch")]
    where = f"epoch {max(epochs)}" if epochs else "the start"
    return (
        "resuming"
        + (" with half the micro-batch" if decision.halve_batch else "")
        + f" from {where}"
    )

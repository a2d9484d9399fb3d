# SPDX-License-Identifier: MIT
"""The body of `dinowm run`: spawn the trainer, ingest its events, sample the GPU, watch, resume."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.alerts import for_project as alert_settings
from dinowm.alerts import notify
from dinowm.alerts.message import OUTCOME_EVENTS, final_summary
from dinowm.config import Project, from_dict, load_project, to_dict
from dinowm.events import max_seq, read_events
from dinowm.rundir import LockHeld, RunLock, committed_checkpoints, read_spec
from dinowm.schema import RunConfig
from dinowm.store import Store
from dinowm.supervise import diagnosis, procinfo, ranks, telemetry
from dinowm.supervise.attempt import AttemptState, Duty, attempt_log, rank_beats, start_trainer
from dinowm.supervise.ending import exit_outcome, halve_batch, next_step, stall_outcome
from dinowm.supervise.gpuwatch import GpuWatch
from dinowm.supervise.launch import flight_recorder, trainer_command
from dinowm.supervise.launch import spawn_detached as spawn_detached  # where callers find it
from dinowm.supervise.ranks import first_failure
from dinowm.supervise.thermal import ThermalGuard
from dinowm.supervise.wandb_mirror import Mirror
from dinowm.supervise.watchdog import Outcome, Verdict, check, check_ranks, decide

TICK_S = 0.25
WAL_EVERY_S = 60.0


class Supervisor:
    """Supervises one run until it completes, stops or fails; survives its trainer's deaths."""

    def __init__(
        self,
        project: Project,
        run_id: str,
        display: Any = None,
        lock: RunLock | None = None,
        lock_fd: int | None = None,
        journal: str = rundir.RECORD,
        telemetry_every_s: float | None = None,
    ):
        alert_settings(project)  # a bad [alerts] table refuses the supervisor before it starts
        self.project = project
        self.store = Store(project.runs_db, journal=journal, telemetry_every_s=telemetry_every_s)
        self.run = self.store.run(run_id)
        self.run_id = self.run["id"]
        self.run_dir = Path(self.run["run_dir"])
        self.display = display
        self.stop_reason: str | None = None
        self.force_stop = False
        self.offset = 0
        self.history: list[Outcome] = []
        self.proc: subprocess.Popen | None = None
        self.lock = lock
        self.lock_fd = lock_fd

    def _hold_lock(self) -> RunLock:
        """The run's supervisor lock: handed over by the caller, inherited, or taken now."""
        if self.lock is not None:
            self.lock.record(os.getpid())
            return self.lock
        if self.lock_fd is not None:
            return RunLock.adopt(rundir.supervisor_lock(self.run_dir), self.lock_fd)
        return rundir.claim(self.run_dir, self.run_id)

    # -- signals -----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_reason is not None:
            self.force_stop = True
            return
        self.stop_reason = f"{signal.Signals(signum).name} received"

    def _install_signals(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, signum: int, frame: Any) -> None:
        """The terminal went away: keep supervising without the display."""
        self.display = None

    # -- the run -----------------------------------------------------------------------------

    def supervise(self) -> str:
        """Run attempts until a final status; returns it.

        The supervisor lock is taken before anything is written and released only after the
        final status is: a second supervisor of the run is refused with LockHeld. A stop
        requested before this supervisor started is kept (the first poll honours it).
        """
        try:
            self.lock = self._hold_lock()
        except BaseException:
            self.store.close()
            raise
        try:
            return self._supervise()
        finally:
            self.lock.release()

    def _supervise(self) -> str:
        self._install_signals()
        me = procinfo.ProcessRef.of(os.getpid())
        self.store.update_run(
            self.run_id,
            status="running",
            supervisor_pid=me.pid,
            supervisor_start=me.start,
            host=socket.gethostname(),
            started_at=self.run.get("started_at") or time.time(),
            ended_at=None,
            exit_reason=None,
        )
        cfg = self._config()
        gpu = GpuWatch(self.store, self.run_id, self.run_dir, cfg.telemetry.interval_s)
        gpu.start()
        mirror = Mirror(
            cfg.wandb.mode,
            cfg.wandb.project,
            cfg.wandb.entity,
            self.run.get("name") or self.run_id,
            self.run_id,
            self.run.get("wandb_id"),
            to_dict(cfg),
            self.run_dir,
        )
        status, reason = "failed", "supervisor error"
        try:
            status, reason = self._attempts(gpu, mirror)
        finally:
            gpu.stop()
            mirror.finish(timeout_s=10)
            wandb = mirror.status()
            recorded, reason = self._recorded(status, reason)
            self.store.update_run(
                self.run_id,
                status=recorded,
                exit_reason=reason,
                ended_at=None if recorded in rundir.ACTIVE else time.time(),
                phase=None,
                pid=None,
                wandb_id=wandb.get("wandb_id") or self.run.get("wandb_id"),
                wandb_url=wandb.get("url") or self.run.get("wandb_url"),
            )
            if self.display is not None:
                self._show(gpu)
            if recorded in ("completed", "failed"):
                self._alert(recorded, final_summary(recorded, self.store.run(self.run_id), reason))
            self.store.checkpoint_wal()
            self.store.close()
        return status

    def _attempts(self, gpu: GpuWatch, mirror: Mirror) -> tuple[str, str]:
        resumes = 0
        while True:
            cfg = self._config()
            attempt = (self.store.run(self.run_id)["attempts"] or 0) + 1
            self.store.update_run(self.run_id, attempts=attempt)
            outcome = self._attempt(cfg, attempt, gpu, mirror)
            if self.stop_reason is not None and outcome.kind not in ("completed", "config"):
                return "stopped", self.stop_reason
            decision = decide(outcome, self.history, cfg.watchdog, resumes)
            self.history.append(outcome)
            if outcome.kind in OUTCOME_EVENTS:  # one alert per incident, saying what comes next
                step = next_step(self.run_dir, decision)
                self._alert(OUTCOME_EVENTS[outcome.kind], f"{outcome.message}; {step}")
            if decision.action == "finish":
                return decision.status or "failed", decision.reason
            resumes += 1
            if decision.halve_batch:
                halve_batch(self.store, self.run_id, self.run_dir, cfg)
            self.store.add_incident(
                self.run_id,
                "resume",
                f"resuming (attempt {attempt + 1}) after "
                f"{decision.delay_s:.0f} s: {decision.reason}",
                {"delay_s": decision.delay_s, "after": outcome.kind},
                attempt=attempt,
            )
            self.store.update_run(self.run_id, status="resuming", phase=None)
            if not self._sleep(decision.delay_s, gpu):
                return "stopped", self.stop_reason or "stopped"
            self.store.update_run(self.run_id, status="running")

    def _attempt(self, cfg: RunConfig, attempt: int, gpu: GpuWatch, mirror: Mirror) -> Outcome:
        """One trainer process from spawn to exit (or to the kill after a stall)."""
        base = max_seq(self.run_dir / rundir.EVENTS)  # an earlier attempt's end is not this one's
        state = AttemptState(
            attempt, cfg, self._spawn(attempt, cfg), ThermalGuard(cfg.thermal), base_seq=base
        )
        self.proc = state.proc
        duties = [
            Duty(1.0, gpu.write_rows),
            Duty(1.0, self._poll_stop_request),
            Duty(WAL_EVERY_S, lambda: self._housekeeping(cfg)),
        ]
        try:
            while True:
                time.sleep(TICK_S)
                now = time.time()
                for duty in duties:
                    duty.run_if_due(time.monotonic())
                self._ingest(state, mirror, now)
                gpu.watch(state.guard, attempt)
                paused = gpu.heat(state.guard, now)
                if paused:
                    self._alert("thermal", paused)
                outcome = self._stop(state)
                if self.display is not None:
                    self._show(gpu)
                outcome = (
                    outcome
                    or self._exited(state, mirror)
                    or self._gpu_lost(state, gpu)
                    or self._stalled(state, gpu, now)
                )
                if outcome is not None:
                    return outcome
        finally:
            self.store.update_run(self.run_id, pid=None)
            self._sync_checkpoints()

    # -- pieces of an attempt ---------------------------------------------------------------

    def _spawn(self, attempt: int, cfg: RunConfig) -> subprocess.Popen[bytes]:
        """The trainer in its own session, its output appended to train.log; with
        dist.nproc_per_node > 1, torchrun starting one rank per GPU (never restarting one: the
        supervisor decides about resumes)."""
        env = {
            **os.environ,
            "DINOWM_ATTEMPT": str(attempt),
            "PYTHONUNBUFFERED": "1",
            **flight_recorder(self.run_dir, cfg),
            **self._trainer_env(),
        }
        proc = start_trainer(self.run_dir, attempt, self._command(cfg, attempt), env)
        ref = procinfo.ProcessRef.of(proc.pid)
        self.store.update_run(self.run_id, pid=ref.pid, pid_start=ref.start)
        return proc

    def _stop(self, a: AttemptState) -> Outcome | None:
        """A stop asked for: SIGTERM (checkpoint, then exit), a kill past the budget, or at
        once after a second signal."""
        if self.stop_reason is None:
            return None
        if self.force_stop:
            self._kill(a.proc, grace_s=0.0)
            return a.outcome("stopped", f"forced stop ({self.stop_reason})")
        w = a.cfg.watchdog
        if a.stop_sent is None:
            self._signal_trainer(signal.SIGTERM)
            a.stop_sent = time.monotonic()
        elif time.monotonic() - a.stop_sent > w.checkpoint_s + w.heartbeat_floor_s:
            self._kill(a.proc, grace_s=5.0)
        return None

    def _exited(self, a: AttemptState, mirror: Mirror) -> Outcome | None:
        """The trainer's exit, classified from its code and its last events."""
        rc = a.proc.poll()
        if rc is None:
            return None
        self._ingest(a, mirror, time.time())
        self._kill(a.proc, grace_s=1.0, reaped=True)  # leftover workers
        failed = (
            first_failure(attempt_log(self.run_dir, a.number))
            if self._ranks(a.cfg) > 1 and rc != 0
            else None
        )
        return exit_outcome(self.store, self.run_id, self.run_dir, a, rc, failed)

    def _gpu_lost(self, a: AttemptState, gpu: GpuWatch) -> Outcome | None:
        """NVML says the GPU is gone: stop the trainer instead of waiting for a stall."""
        if a.stop_sent is not None or not gpu.lost:
            return None
        gpu.write_rows()
        self._kill(a.proc, grace_s=10.0)
        msg = f"GPU lost: {gpu.lost}"
        self.store.add_incident(self.run_id, "gpu_lost", msg, gpu.lost, attempt=a.number)
        return a.outcome("lost_gpu", msg)

    def _stalled(self, a: AttemptState, gpu: GpuWatch, now: float) -> Outcome | None:
        if self._ranks(a.cfg) > 1:  # any rank's silence is the run's
            verdict = check_ranks(a.progress, rank_beats(self.run_dir, a), now, a.cfg.watchdog)
        else:
            verdict = check(a.progress, now, a.cfg.watchdog)
        if not verdict.stalled or a.stop_sent is not None:
            return None
        return self._stall(verdict, a, gpu)

    def _ingest(self, a: AttemptState, mirror: Mirror, now: float) -> None:
        events, self.offset = read_events(self.run_dir / rundir.EVENTS, self.offset)
        if not events:
            return
        self.store.ingest(self.run_id, events)
        for event in events:
            a.progress.observe(event, now)
            kind = event["type"]
            mine = event["seq"] > a.base_seq
            if kind == "error" and mine:
                a.error = event
            elif kind == "end" and mine:
                a.end = event.get("status")
            elif kind == "epoch":
                mirror.log(
                    {
                        "epoch": event["epoch"],
                        **event.get("metrics", {}),
                        "z_err_pred": event.get("z_err_pred"),
                    },
                    step=event["epoch"],
                )
                if self.display is not None:
                    self.display.epoch(event)
            elif kind == "start" and self.display is not None:
                self.display.start(event)

    def _stall(self, verdict: Verdict, a: AttemptState, gpu: GpuWatch) -> Outcome:
        """Diagnose, record, kill the process group, reap."""
        snapshot = telemetry.snapshot(timeout=5.0) if gpu.available else None
        beats = rank_beats(self.run_dir, a) if self._ranks(a.cfg) > 1 else []
        diag = (
            ranks.diagnose(self.run_dir, beats, snapshot, silent=verdict.rank)
            if beats
            else diagnosis.collect(self.run_dir, self._trainer_pid(a), gpu=snapshot)
        )
        killed = self._kill(a.proc, grace_s=a.cfg.watchdog.kill_grace_s)
        return stall_outcome(self.store, self.run_id, verdict, a, diag, killed)

    def _alert(self, event: str, summary: str) -> None:
        """Alert the [alerts] targets in a detached process: nothing here waits for them."""
        notify(self.project, event, run=self.run, summary=summary)

    def _housekeeping(self, cfg: RunConfig) -> None:
        """Bound runs.db: fold old telemetry into buckets, fold the WAL into the database."""
        before = time.time() - cfg.telemetry.raw_retention_s
        self.store.aggregate_telemetry(self.run_id, before, cfg.telemetry.aggregate_s)
        self.store.checkpoint_wal()  # with a reader inside, it folds what it can; next round more

    def _sync_checkpoints(self) -> None:
        """The record lists exactly the committed checkpoints on disk."""
        self.store.sync_checkpoints(self.run_id, committed_checkpoints(self.run_dir))

    def _poll_stop_request(self) -> None:
        if self.stop_reason is None and (
            self.store.stop_requested(self.run_id) or rundir.stop_requested(self.run_dir)
        ):
            self.stop_reason = "stop requested (dinowm stop)"

    # -- how the trainer starts and ends (a Slurm job's supervisor uses srun) ----------------

    def _recorded(self, status: str, reason: str) -> tuple[str, str]:
        """The status and reason the record keeps for how supervise() ended."""
        return status, reason

    def _trainer_env(self) -> dict[str, str]:
        """Variables for the trainer besides the attempt's (a Slurm job adds its own)."""
        return {}

    def _command(self, cfg: RunConfig, attempt: int) -> list[str]:
        return trainer_command(cfg)

    def _ranks(self, cfg: RunConfig) -> int:
        """Training processes of one attempt."""
        return cfg.dist.nproc_per_node

    def _kill(self, proc: subprocess.Popen, grace_s: float, reaped: bool = False) -> dict[str, Any]:
        """End the trainer's process tree (SIGTERM, SIGKILL after grace_s); with reaped, only
        what it left behind."""
        return procinfo.kill_tree(proc.pid, None if reaped else proc, grace_s=grace_s)

    def _trainer_pid(self, a: AttemptState) -> int:
        """The process whose stacks a stall diagnosis takes."""
        return a.proc.pid

    def _signal_trainer(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def _sleep(self, seconds: float, gpu: GpuWatch) -> bool:
        """Back-off wait that a stop request interrupts; False when stopped."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stop_reason is not None:
                return False
            time.sleep(min(TICK_S, max(deadline - time.monotonic(), 0)))
            gpu.write_rows()
            self._poll_stop_request()
        return self.stop_reason is None

    def _config(self) -> RunConfig:
        return from_dict(read_spec(self.run_dir)["config"])

    def _show(self, gpu: GpuWatch) -> None:
        try:
            self.display.update(self.store.run(self.run_id), gpu.latest())
        except OSError:
            self.display = None  # the terminal is gone; keep supervising


def run_foreground(project: Project, run_id: str, lock: RunLock | None = None) -> str:
    """Supervise in this process with the live display; Ctrl-C stops gracefully."""
    from dinowm.supervise.live import Display

    with Display() as display:
        return Supervisor(project, run_id, display=display, lock=lock).supervise()


def main(argv: list[str] | None = None) -> int:
    """`python -m dinowm.supervise.supervisor --config PATH --run ID`: a detached supervisor."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dinowm.supervise.supervisor")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument(
        "--lock-fd",
        type=int,
        default=None,
        help="the run's supervisor lock, inherited from 'dinowm resume'",
    )
    args = parser.parse_args(argv)
    try:
        status = Supervisor(load_project(args.config), args.run, lock_fd=args.lock_fd).supervise()
    except LockHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if status in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())

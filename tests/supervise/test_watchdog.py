# SPDX-License-Identifier: MIT
"""Pure supervisor decisions: stall budgets per phase, outcome policies, the thermal guard."""

from __future__ import annotations

from dinowm.schema import ThermalConfig, WatchdogConfig
from dinowm.supervise.thermal import ThermalGuard
from dinowm.supervise.watchdog import (Outcome, Progress, check, check_ranks, classify, decide,
                                       p99)

CFG = WatchdogConfig(heartbeat_floor_s=10.0, heartbeat_factor=5.0, startup_s=100.0,
                     validation_s=50.0, checkpoint_s=20.0, max_attempts=3, backoff_s=2.0,
                     backoff_max_s=10.0)


def _progress(step_s: float = 1.0, steps: int = 50) -> Progress:
    p = Progress(attempt_started=0.0)
    p.observe({"type": "start"}, 1.0)
    for i in range(steps):
        p.observe({"type": "heartbeat", "step": i + 1, "step_s": step_s}, 2.0 + i)
    return p


def test_startup_budget_until_the_first_step() -> None:
    p = Progress(attempt_started=0.0)
    p.observe({"type": "start"}, 1.0)
    assert not check(p, 99.0, CFG).stalled
    v = check(p, 101.0, CFG)
    assert v.stalled and v.phase == "startup" and v.limit_s == 100.0


def test_training_budget_is_adaptive_with_a_floor() -> None:
    fast = _progress(step_s=0.1)
    assert check(fast, 51.0 + 9.9, CFG).stalled is False
    assert check(fast, 51.0 + 10.1, CFG).stalled  # floor 10 s beats 5 x 0.1 s
    slow = _progress(step_s=4.0)
    assert check(slow, 51.0 + 19.0, CFG).stalled is False
    assert check(slow, 51.0 + 20.5, CFG).stalled  # 5 x p99 (4 s) = 20 s


def test_p99_ignores_a_single_outlier_only_with_enough_samples() -> None:
    p = _progress(step_s=1.0, steps=200)
    p.observe({"type": "heartbeat", "step": 201, "step_s": 60.0}, 300.0)
    assert p99(p.step_times) == 1.0


def test_validation_and_checkpoint_have_their_own_budgets() -> None:
    p = _progress(step_s=0.1)
    p.observe({"type": "phase", "phase": "validation"}, 100.0)
    assert not check(p, 149.0, CFG).stalled and check(p, 151.0, CFG).stalled
    p.observe({"type": "phase", "phase": "checkpoint"}, 200.0)
    assert not check(p, 219.0, CFG).stalled and check(p, 221.0, CFG).stalled


def test_classify_exit_codes() -> None:
    assert classify(0, "completed", None, None) == ("completed", "completed")
    assert classify(0, "stopped", None, None)[0] == "stopped"
    assert classify(0, None, None, None)[0] == "crash"  # exit 0 but never said it ended
    assert classify(2, None, {"message": "bad data"}, None) == ("config", "bad data")
    assert classify(3, None, None, None)[0] == "oom"
    assert classify(4, None, None, None)[0] == "disk_full"
    kind, msg = classify(-9, None, None, "SIGKILL")
    assert kind == "signal" and "OOM killer" in msg
    assert classify(1, None, {"message": "ValueError: x"}, None) == ("crash", "ValueError: x")
    # the end event says completed, then the launcher's teardown got a signal: nothing is lost
    assert classify(1, "completed", None, None) == (
        "completed", "completed (its end event was written; the process then exited with code 1)")
    assert classify(-15, "completed", None, "SIGTERM")[0] == "completed"
    assert classify(1, "stopped", None, None)[0] == "crash"


def test_policies() -> None:
    crash = Outcome("crash", "boom", steps=5, last_step=5)
    d = decide(crash, [], CFG, automatic_resumes=0)
    assert d.action == "resume" and d.delay_s == 2.0
    d = decide(crash, [crash], CFG, automatic_resumes=1)
    assert d.delay_s == 4.0  # doubles
    assert decide(crash, [], CFG, automatic_resumes=3).status == "failed"
    stuck = Outcome("stall", "hang", steps=0)
    d = decide(stuck, [stuck, stuck], CFG, automatic_resumes=2)
    assert d.status == "failed" and "no progress" in d.reason
    # resumed from the same checkpoint and hung at the same step each time: no progress either
    again = [Outcome("stall", "hang", steps=3, last_step=13) for _ in range(3)]
    first = Outcome("stall", "hang", steps=13, last_step=13)
    d = decide(again[-1], [first, *again[:-1]], CFG, 2)
    assert d.status == "failed" and "no progress" in d.reason
    assert decide(again[0], [first], CFG, 1).action == "resume"
    assert decide(Outcome("config", "bad", 0), [], CFG, 0).status == "failed"
    oom = Outcome("oom", "OOM", 3, micro_batch=32)
    assert decide(oom, [], CFG, 0).halve_batch
    assert decide(Outcome("oom", "OOM", 3, micro_batch=1), [], CFG, 0).status == "failed"
    stop_cfg = WatchdogConfig(oom="stop", on_crash="stop")
    d = decide(oom, [], stop_cfg, 0)
    assert d.status == "failed" and "training.batch_size=16" in d.reason
    assert decide(crash, [], stop_cfg, 0).status == "failed"
    healthy = Outcome("crash", "x", steps=500, last_step=500)
    assert decide(crash, [healthy], CFG, 1).delay_s == 2.0  # backoff reset after a healthy run
    assert decide(Outcome("lost_gpu", "Xid 79", 10), [], CFG, 0).status == "failed"


def test_thermal_guard_pauses_after_hold_and_resumes_below() -> None:
    g = ThermalGuard(ThermalConfig(max_temp_c=83.0, resume_temp_c=75.0, hold_s=10.0))
    assert g.update(84.0, 0.0) is None
    assert g.update(84.0, 5.0) is None
    assert g.update(80.0, 6.0) is None  # dipped: the hold restarts
    assert g.update(85.0, 7.0) is None
    assert g.update(85.0, 17.0) == "pause"
    assert g.update(78.0, 20.0) is None  # below max, not yet below resume
    assert g.update(74.0, 30.0) == "resume"
    off = ThermalGuard(ThermalConfig(enabled=False))
    assert off.update(120.0, 0.0) is None and off.update(120.0, 100.0) is None


def test_any_ranks_silence_is_a_stall_of_the_run_and_names_the_rank() -> None:
    p = _progress(step_s=0.1)  # rank 0's last event at t=51: budget 10 s (the floor)
    beats = [{"rank": 0, "step": 50, "phase": "train", "t": 55.0, "collective": "all_reduce"},
             {"rank": 1, "step": 50, "phase": "train", "t": 45.0}]
    assert not check_ranks(p, beats[:1], 58.0, CFG).stalled
    v = check_ranks(p, beats, 58.0, CFG)  # rank 1 silent 13 s > 10 s
    assert v.stalled and v.rank == 1 and v.describe().startswith("rank 1: no progress for 13 s")
    beats[1]["phase"] = "validation"  # a rank validating has the validation budget (50 s)
    assert not check_ranks(p, beats, 58.0, CFG).stalled
    run = check_ranks(p, beats, 62.0, CFG)  # rank 0's own events stale: the run's verdict,
    assert run.stalled and run.rank == 1  # about the rank it waits for, not about itself
    assert check_ranks(p, beats[:1], 62.0, CFG).rank is None  # nobody to wait for


def test_a_rank_the_others_wait_for_is_frozen_whatever_its_phase() -> None:
    """The user's case: rank 1 stopped while validating (its phase's budget is 50 s), rank 0
    waits for it in the metrics' all-reduce: found once rank 0 waited longer than a step may
    take (10 s), long before the validation budget or the collective's own timeout."""
    p = _progress(step_s=0.1)
    p.phase, p.last_beat = "validation", 56.0  # rank 0's events: the validation phase's budget
    beats = [{"rank": 0, "step": 50, "phase": "validation", "t": 56.0,
              "collective": "metric_keys"},
             {"rank": 1, "step": 50, "phase": "validation", "t": 55.0}]
    assert not check_ranks(p, beats, 65.0, CFG).stalled  # waited 9 s: a step may take 10
    v = check_ranks(p, beats, 67.0, CFG)
    assert v.stalled and v.rank == 1 and v.phase == "validation" and v.age_s == 12.0
    beats[0]["phase"], beats[0]["collective"] = "failed", None  # rank 0 timed out already
    beats[0]["failed_in"] = "metric_keys"
    v = check_ranks(p, beats, 67.0, CFG)  # torchrun cannot end a stopped rank: still rank 1
    assert v.stalled and v.rank == 1

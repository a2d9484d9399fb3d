# SPDX-License-Identifier: MIT
"""Randomised fault injection (behind the `randomized` marker): many seeds, one invariant.

    DINOWM_FAULT_SEEDS=20 pytest -m randomized tests/faults/test_randomized.py

Each seed trains the same deterministic tiny run under the supervisor while it is hit by three
SIGKILLs at random wall-clock moments (sent from outside, wherever the trainer happens to be:
mid-step, mid-checkpoint, mid-validation) plus one random injected fault (a freeze, a stop, a
kill inside a checkpoint save). Every seed must end completed with every epoch recorded once,
every kept checkpoint verifying, and final weights bit-identical to the uninterrupted run.
A summary line per seed goes to $DINOWM_FAULT_REPORT (JSON lines) when set.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from dinowm.supervise.procinfo import ProcessRef
from tests.support.run_checks import DET, all_checkpoints_verify, epochs, final_weights
from tests.support.supervised import Project, tiny

SEEDS = int(os.environ.get("DINOWM_FAULT_SEEDS", "2"))
EXTRA = ["global_step:{s}:hang", "global_step:{s}:busy", "global_step:{s}:sigstop",
         "global_step:{s}:deadlock", "ckpt_mid_write:{n}:sigkill", "ckpt_after_rename:{n}:sigkill",
         "ckpt_after_manifest:{n}:sigkill", "ckpt_before_event:{n}:sigkill"]
ARGS = ["training.epochs=4", "training.max_steps_per_epoch=6", *DET,
        "watchdog.heartbeat_floor_s=2"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    project = Project(tmp_path_factory.mktemp("baseline"))
    assert project.cli("run", *tiny(*ARGS)).returncode == 0
    return final_weights(project.run_row())


def _killer(project: Project, rng: random.Random, kills: int, done: threading.Event,
            log: list[str]) -> None:
    """SIGKILL the running trainer `kills` times at random moments, each after new progress.

    Waiting for a step beyond the last kill keeps the adversary fair: a run killed again and
    again before it can make any progress is rightly given up ("no progress").
    """
    last_step = -1
    while kills and not done.is_set():
        time.sleep(rng.uniform(0.2, 3.0))
        try:
            rows = project.rows("select pid, pid_start, step from runs where pid is not null")
        except Exception:  # the db may be mid-creation
            continue
        if not rows or (rows[0]["step"] or 0) <= last_step:
            continue
        ref = ProcessRef(rows[0]["pid"], rows[0]["pid_start"] or -1)
        if ref.alive() and ref.send(signal.SIGKILL):
            kills -= 1
            last_step = rows[0]["step"] or 0
            log.append(f"SIGKILL pid {ref.pid} at step {last_step}")


@pytest.mark.randomized
@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_faults_lose_nothing(tmp_path: Path, seed: int, baseline) -> None:
    rng = random.Random(seed)
    (tmp_path / "p").mkdir()
    project = Project(tmp_path / "p")
    extra = rng.choice(EXTRA).format(s=rng.randint(2, 24), n=rng.randint(1, 6))
    env = {"DINOWM_FAULT": extra, "DINOWM_FAULT_ONCE": str(tmp_path / "fired")}
    done, log = threading.Event(), []
    killer = threading.Thread(target=_killer, args=(project, rng, 3, done, log), daemon=True)
    killer.start()
    out = project.cli("run", *tiny(*ARGS, "watchdog.max_attempts=10"), env=env, timeout=900)
    done.set()
    killer.join(timeout=10)
    run = project.run_row()
    fired = tmp_path / "fired"  # DINOWM_FAULT_ONCE: the planned fault, if the run reached it
    report = {"seed": seed, "extra_fault": extra,
              "extra_fired": fired.exists() and extra in fired.read_text().split(),
              "kills": log, "attempts": run["attempts"],
              "status": run["status"], "exit_reason": run["exit_reason"]}
    ok = (out.returncode == 0 and run["status"] == "completed"
          and epochs(project, run["id"]) == [1, 2, 3, 4])
    if ok:
        all_checkpoints_verify(run)
        weights = final_weights(run)
        ok = all(torch.equal(baseline[k], weights[k]) for k in baseline)
    report["survived_bit_identical"] = ok
    if os.environ.get("DINOWM_FAULT_REPORT"):
        with open(os.environ["DINOWM_FAULT_REPORT"], "a") as fh:
            fh.write(json.dumps(report) + "\n")
    assert ok, (report, out.stdout[-2000:])

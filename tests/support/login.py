# SPDX-License-Identifier: MIT
"""The login node of the cluster tests: a project whose Slurm commands talk to a test cluster
(tests/support/slurm.py) and that reads the record only as a user's login node would."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dinowm import rundir
from dinowm.cluster.slurm import LIVE
from tests.support.run_checks import DET
from tests.support.slurm import Cluster
from tests.support.supervised import Project, tiny

TWO = ["dist.nproc_per_node=2", "dist.timeout_s=60", "watchdog.heartbeat_floor_s=30"]

# Slurm checks time limits every 30 s and sends the warning signal at the first check within
# signal_s + 30 s of the end: a 2-minute limit with signal_s = 50 signals 40 to 70 s into the
# allocation, after the trainer's start however loaded the machine is.
SIGNAL_S = 50


class LoginNode:
    """A project whose Slurm commands talk to the test cluster; it reads the record only
    through `dinowm runs --json`, as a user on the login node would."""

    def __init__(self, project: Project, cluster: Cluster):
        self.project = project
        self.cluster = cluster
        project.env.update(cluster.env)
        self.seen: list[tuple[str, str | None]] = []  # (status, Slurm state) as polled

    def signal_within_two_minutes(self) -> None:
        """The project's slurm.signal_s set to SIGNAL_S, for jobs with `--time 2`."""
        toml = self.project.root / "dinowm.toml"
        text = toml.read_text()
        changed = text.replace("signal_s = 120 ", f"signal_s = {SIGNAL_S}  ")
        assert changed != text, "the shipped dinowm.toml no longer says signal_s = 120"
        toml.write_text(changed)

    def submit(self, *extra: str, env: dict | None = None, ranks: int = 2) -> dict:
        two = TWO if ranks == 2 else ["watchdog.heartbeat_floor_s=30"]  # 1: srun runs the trainer
        out = self.project.cli("run", *tiny(*DET, *two, *extra), "--slurm", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        return self.project.run_row()

    def poll(self, run_id: str, until, timeout: float = 240) -> dict:
        """`dinowm runs --json` every 2 s until until(row) holds; returns the row (each call
        is a CLI process of about 0.6 s CPU: a tighter poll costs the machine more than it
        shows, and the cluster tests wait on Slurm's own tens of seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.project.cli("runs", "--json")
            assert out.returncode == 0, out.stderr
            row = next(r for r in json.loads(out.stdout) if r["id"] == run_id)
            seen = (row["status"], row["slurm_state"])
            if not self.seen or self.seen[-1] != seen:
                self.seen.append(seen)
            if until(row):
                return row
            assert time.monotonic() < deadline, (self.seen, self.cluster.log()[-3000:])
            time.sleep(2.0)

    def done(self, run_id: str, timeout: float = 240) -> dict:
        """Until the run's status is final and Slurm has ended its job."""
        return self.poll(run_id, lambda r: r["status"] not in rundir.ACTIVE and
                         r["slurm_state"] not in LIVE, timeout)


def log_count(run: dict, text: str) -> int:
    """How many lines of the run's train.log hold text."""
    path = Path(run["run_dir"]) / rundir.LOG
    return sum(text in line for line in path.read_text().splitlines()) if path.exists() else 0


def wait_for_line(run: dict, text: str, count: int, timeout: float = 120) -> None:
    """Until train.log holds `count` lines with text (the trainer's own word that a signal
    came, say, before the test lets it go on)."""
    deadline = time.monotonic() + timeout
    while log_count(run, text) < count:
        assert time.monotonic() < deadline, f"no {count} lines with {text!r} in {timeout:g} s"
        time.sleep(0.2)


def epoch_lines(run: dict) -> list[int]:
    """The epochs train.log reports done, in order (a doubled epoch shows twice)."""
    text = (Path(run["run_dir"]) / rundir.LOG).read_text()
    return [int(line.split("epoch ")[1].split()[0]) for line in text.splitlines()
            if " done: train_loss" in line]

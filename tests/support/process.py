# SPDX-License-Identifier: MIT
"""Real child processes in their own sessions, and waiting on a condition in plain code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest

Spawn = Callable[..., subprocess.Popen]


@pytest.fixture
def spawn_process() -> Iterator[Spawn]:
    """Start `python -c code *args` in its own session; kill its whole group at teardown."""
    started: list[subprocess.Popen] = []

    def start(code: str, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        proc.stdout.close()


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.01) -> None:
    """Poll predicate() every `interval` seconds until it holds; fail the test at the deadline.

    For plain code; a Textual app under a Pilot waits with tests.support.tui.pilot_wait_for.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def unavailable(message: str, require: str) -> None:
    """A real component a test needs is missing: fail where the environment variable `require`
    is 1 (.ci/run sets it, having installed the component), skip saying so elsewhere."""
    if os.environ.get(require) == "1":
        pytest.fail(f"{message} ({require}=1: .ci/run installs it)")
    pytest.skip(message)

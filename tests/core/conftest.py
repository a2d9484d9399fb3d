"""Helpers of the process tests (procinfo, diagnosis): real children in their own sessions."""

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


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until predicate() holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)

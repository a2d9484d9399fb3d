# SPDX-License-Identifier: MIT
"""dinowm-tui in a real terminal: tmux at 80x24, keys sent, the pane captured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """A private tmux server (own socket) with one 80x24 session."""

    def __init__(self, socket: str) -> None:
        self.base = ["tmux", "-L", socket, "-f", os.devnull]

    def __call__(self, *args: str) -> str:
        out = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        return out.stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def wait(self, *needles: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.pane()
            if all(n in text for n in needles):
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needles} not in the pane:\n{self.pane()}")

    def wait_gone(self, needle: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while needle in self.pane():
            assert time.monotonic() < deadline, f"{needle} still in the pane:\n{self.pane()}"
            time.sleep(0.1)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"dinowm-test-{os.getpid()}-{tmp_path.name}")
    yield server
    server("kill-server")


def test_start_navigate_quit_in_tmux(seeded: Path, tmux: Tmux) -> None:
    exe = Path(sys.executable).with_name("dinowm-tui")
    command = str(exe) if exe.exists() else f"{sys.executable} -m tui.app"
    tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", "-c", str(seeded.parent),
         f"env TZ=UTC TERM=xterm-256color {command}; echo EXITED:$?; sleep 30")
    text = tmux.wait("baseline", "lr-high", "no GPU", "q Quit")
    assert "▶ running" in text and "✔ completed" in text and "⏎ Open" in text
    tmux("send-keys", "-t", "tui", "Down", "Down", "Enter")
    text = tmux.wait("1 Epochs", "6 Log", "lr-high", "esc Back")
    assert "0.4333" in text  # epoch 3's train loss in the epoch table
    tmux("send-keys", "-t", "tui", "4")
    tmux.wait("stall: no heartbeat")
    tmux("send-keys", "-t", "tui", "Enter")
    tmux.wait("── stuck_frame", "w Wrap")
    tmux("send-keys", "-t", "tui", "Escape", "Escape")
    tmux.wait("4 runs, 1 active")
    tmux("send-keys", "-t", "tui", "/")
    tmux.wait_gone("⏎ Open")  # the filter has the focus: the table's keys left the footer
    tmux("send-keys", "-t", "tui", "b", "8")
    text = tmux.wait("1 shown")
    assert "baseline" not in text and "b8" in text
    tmux("send-keys", "-t", "tui", "Enter")
    tmux.wait("⏎ Open")
    tmux("send-keys", "-t", "tui", "q")
    tmux.wait("EXITED:0")

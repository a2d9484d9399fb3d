"""A run on several GPUs seen from the supervisor: which rank failed first, and how.

torchrun (`--max-restarts=0`) ends every rank when one fails and exits 1 itself; the rank that
failed first, its exit code or signal, is in the report torchrun prints to train.log
("Root Cause (first observed failure)").
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

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
        how = f"killed by {self.signal_name}" if self.signal_name else \
            f"exited with code {self.exit_code}"
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

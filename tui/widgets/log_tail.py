# SPDX-License-Identifier: MIT
"""A live tail of a log file: starts at its end, follows appended lines, never reads it whole."""

from __future__ import annotations

import time
from pathlib import Path

from textual import on, work
from textual.widgets import Log
from textual.worker import get_current_worker

from dinowm.formats import literal
from dinowm.rundir import last_lines
from tui.messages import LogLines

CHUNK = 1024 * 1024  # bytes read per step while catching up


def read_start(path: Path, lines: int) -> tuple[list[str], int]:
    """The last lines of path and the offset right after them (a trailing partial line excluded)."""
    for _ in range(3):  # the file may grow while we read its end: retry until the size holds
        size = path.stat().st_size
        clean = size == 0 or _last_byte(path, size) == b"\n"
        tail = last_lines(path, lines + (not clean)) if size else []
        if path.stat().st_size == size:
            break
    if not clean and tail:  # the unfinished line is followed later as part of the next read
        size -= len(tail.pop().encode("utf-8", "replace"))
    return tail, size


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)


def split_lines(data: bytes, partial: bytes) -> tuple[list[str], bytes]:
    """Complete lines of partial + data, and what is left of an unfinished last line."""
    data = partial + data
    complete, newline, rest = data.rpartition(b"\n")
    if not newline:
        if len(rest) < CHUNK:
            return [], rest
        complete, rest = rest, b""  # an endless line: show it rather than hold it forever
    return complete.decode("utf-8", "replace").split("\n"), rest


class LogTail(Log):
    """train.log of a run; `path` is set by the screen, a worker follows the file."""

    def __init__(
        self,
        path: Path | None,
        *,
        poll_s: float = 0.25,
        start_lines: int = 400,
        max_lines: int = 20_000,
        id: str | None = None,
    ) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id)
        self.path = path
        self.poll_s = poll_s
        self.start_lines = start_lines

    def on_mount(self) -> None:
        if self.path is not None:
            self.follow(self.path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="log-tail")
    def follow(self, path: Path) -> None:
        """Post the file's end, then every line appended; start over when it is replaced."""
        worker = get_current_worker()
        identity: tuple[int, int] | None = None
        offset, partial, waiting = 0, b"", False
        while not worker.is_cancelled:
            try:
                st = path.stat()
            except FileNotFoundError:
                if not waiting:
                    self.post_message(LogLines(str(path), [f"(waiting for {path})"], reset=True))
                    waiting, identity = True, None
                self._nap(worker)
                continue
            if (st.st_dev, st.st_ino) != identity or st.st_size < offset:
                lines, offset = read_start(path, self.start_lines)
                identity, partial, waiting = (st.st_dev, st.st_ino), b"", False
                self.post_message(LogLines(str(path), lines, reset=True, start=offset))
            elif st.st_size > offset:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(min(st.st_size - offset, CHUNK))
                offset += len(data)
                lines, partial = split_lines(data, partial)
                if lines:
                    self.post_message(LogLines(str(path), lines))
                continue  # more may be waiting: no nap while catching up
            self._nap(worker)

    def _nap(self, worker: object) -> None:
        deadline = time.monotonic() + self.poll_s
        while time.monotonic() < deadline and not getattr(worker, "is_cancelled", False):
            time.sleep(min(0.1, self.poll_s))

    @on(LogLines)
    def _show(self, message: LogLines) -> None:
        message.stop()
        if self.path is None or message.path != str(self.path):
            return
        if message.reset:
            self.clear()
        self.write_lines([literal(line, lines=True) for line in message.lines])

    def toggle_follow(self) -> bool:
        """Stop or resume scrolling to new lines; returns the new state."""
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        return self.auto_scroll

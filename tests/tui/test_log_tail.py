# SPDX-License-Identifier: MIT
"""The log tail: starts at the end of a multi-gigabyte file, follows it, survives replacement."""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import App, ComposeResult

from tests.support.tui import aio, pilot_wait_for
from tui.widgets.log_tail import LogTail, read_start, split_lines

GIB = 2**30


def big_log(path: Path, lines: int = 1000) -> Path:
    """A 3 GiB log (sparse: only its end is written) ending with `lines` numbered lines."""
    with open(path, "wb") as fh:
        fh.truncate(3 * GIB)
    with open(path, "ab") as fh:
        fh.write(b"\n" + b"".join(f"line {i}\n".encode() for i in range(lines)))
    return path


def test_read_start_reads_only_the_end(tmp_path: Path) -> None:
    path = big_log(tmp_path / "train.log")
    start = time.perf_counter()
    lines, offset = read_start(path, 400)
    assert time.perf_counter() - start < 0.5
    assert lines == [f"line {i}" for i in range(600, 1000)]
    assert offset == path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b"half a li")
    lines, offset = read_start(path, 2)
    assert lines == ["line 998", "line 999"] and offset == path.stat().st_size - 9


def test_split_lines_keeps_the_unfinished_line() -> None:
    assert split_lines(b"a\nb", b"") == (["a"], b"b")
    assert split_lines(b"c\nd\n", b"b") == (["bc", "d"], b"")
    assert split_lines(b"no newline", b"") == ([], b"no newline")


class TailApp(App[None]):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield LogTail(self.path, poll_s=0.05, start_lines=50)


@aio
async def test_follows_appends_and_replacement(tmp_path: Path) -> None:
    path = big_log(tmp_path / "train.log")
    app = TailApp(path)
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(LogTail)
        await pilot_wait_for(pilot, lambda: log.line_count == 50)
        assert log.lines[0] == "line 950" and log.lines[-1] == "line 999"
        with open(path, "ab") as fh:
            fh.write(b"epoch 7 do")
        await pilot.pause(0.2)
        with open(path, "ab") as fh:
            fh.write(b"ne\nstep 1\n")
        await pilot_wait_for(pilot, lambda: log.lines[-1] == "step 1")
        assert log.lines[-2] == "epoch 7 done"
        path.unlink()
        await pilot_wait_for(pilot, lambda: log.lines[-1].startswith("(waiting for"))
        path.write_text("--- attempt 2 started ---\n")
        await pilot_wait_for(pilot, lambda: list(log.lines) == ["--- attempt 2 started ---"])

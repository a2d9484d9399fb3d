# SPDX-License-Identifier: MIT
"""Large exports fork workers: the result is the same as in one process, failures are loud."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

import dinowm.export as export
from dinowm.errors import DinowmError
from dinowm.export.parallel import fork_map
from dinowm.store import Store
from tests.support import export_fixture


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """fork_map runs in-process while other threads live (a lock they hold would stay locked
    in a child); an earlier test in this worker may have left one briefly (an alert's
    delivery reaper lives until its process ends): wait for it."""
    deadline = time.monotonic() + 30
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == 1, [t.name for t in threading.enumerate()]


def test_fork_map_keeps_order() -> None:
    parent = os.getpid()
    out = fork_map(lambda i: (i * i, os.getpid() != parent), 7, 3)
    assert [v for v, _ in out] == [i * i for i in range(7)]
    assert [child for _, child in out] == [False, False, True, True, True, True, True]
    assert fork_map(lambda i: i, 2, 8) == [0, 1]


def test_a_failing_worker_is_an_error() -> None:
    def work(i: int) -> int:
        if i == 5:
            raise ValueError("boom")
        return i

    with pytest.raises(DinowmError, match="worker process"):
        fork_map(work, 6, 2)


def test_forked_export_equals_single_process(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    root.mkdir()
    db = export_fixture.build(root)
    texts = []
    for per_worker in (1000, 1):
        monkeypatch.setattr(export, "RUNS_PER_WORKER", per_worker)
        monkeypatch.setattr(export, "cores", lambda: 2)
        out = tmp_path / f"all{per_worker}.md"
        with Store(db) as store:
            result = export.export_log(store, out, all_runs=True, tz=dt.timezone.utc,
                                       now=export_fixture.NOW)
        assert len(result.images) == 2 and all(p.exists() for p in result.images)
        texts.append(out.read_text().replace(out.stem, "all"))
    assert texts[0] == texts[1]

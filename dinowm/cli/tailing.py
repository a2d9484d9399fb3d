# SPDX-License-Identifier: MIT
"""`dinowm tail`: the end of a run's train.log, then new lines while the run is active."""

from __future__ import annotations

import codecs
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.backends import backend_of
from dinowm.formats import literal
from dinowm.rundir import ACTIVE
from dinowm.store import Store


def follow_log(
    db_path: Path, run: dict[str, Any], lines: int, follow: bool, poll_s: float = 0.5
) -> None:
    """Print the last `lines` lines; with follow, stream appended bytes until the run ends.
    The log's text is shown literally (formats.literal): its control sequences never reach
    the terminal."""
    backend = backend_of(run)
    path = backend.log_path(run)
    with contextlib.suppress(FileNotFoundError):  # none yet: a run still pending
        for line in rundir.last_lines(path, lines):
            sys.stdout.write(literal(line, lines=True) + "\n")
    sys.stdout.flush()
    if not follow:
        return
    offset = path.stat().st_size if path.exists() else 0
    last_check = 0.0
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode  # a character may be cut
    try:
        while True:
            if path.exists() and path.stat().st_size > offset:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
                offset += len(data)
                sys.stdout.write(literal(decode(data), lines=True))
                sys.stdout.flush()
                continue
            if time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                with Store(db_path) as store:
                    backend.reconcile(store)  # where it runs says (a cluster run: Slurm)
                    status = store.run(run["id"])["status"]
                if status not in ACTIVE:
                    sys.stdout.write(f"[run {run['id']} is {status}]\n")
                    return
            time.sleep(poll_s)
    except KeyboardInterrupt:
        return

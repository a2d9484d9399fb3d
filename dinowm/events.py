# SPDX-License-Identifier: MIT
"""The trainer → supervisor contract: events.jsonl, one JSON object a line with a rising seq.

Event types, each with `seq`, `t` (unix time) and `type`:
  start       attempt, pid, epoch (next to run), step, batches_per_epoch, batch_size, grad_accum,
              train_samples, val_samples, params, encoder_label, device, resumed_from,
              stats_from (train | all: the episodes of the normalisation statistics; a resume
              keeps its checkpoint's), shuffle (epoch | fixed: the training order)
  phase       phase (startup | train | validation | checkpoint | thermal_pause), epoch
  heartbeat   epoch, batch, batches, step, loss, step_s, samples_per_s, eta_s
  epoch       epoch, train_loss, val_loss, z_err_pred, metrics{...}, duration_s, samples_per_s,
              peak_gpu_mem_mib, steps, batch_size, started_at, ended_at
  checkpoint  path, kind (epoch | latest), epoch, batch_in_epoch, step, sha256, size
  incident    kind, summary, details{...}
  error       kind (oom | exception | data | config | disk_full), message, traceback, ...
  end         status (completed | stopped), epoch, step
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dinowm.faults import fault
from dinowm.rundir import read_jsonl


def last_seq(path: Path) -> int:
    """Highest seq in an events file; a torn last line (no newline) is cut off first."""
    if not path.exists():
        return 0
    with open(path, "rb+") as fh:
        data = fh.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            fh.truncate(end)
    seq = 0
    for line in data[:end].splitlines():
        try:
            seq = max(seq, int(json.loads(line)["seq"]))
        except (ValueError, KeyError, TypeError):
            continue
    return seq


def max_seq(path: Path) -> int:
    """Highest seq of the complete lines of an events file, read only (a reader's last_seq)."""
    if not Path(path).exists():
        return 0
    events, _ = read_jsonl(Path(path), 0)
    return max((int(e["seq"]) for e in events if isinstance(e.get("seq"), int)), default=0)


class EventWriter:
    """Appends events to events.jsonl; seq continues across attempts of the same run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.seq = last_seq(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held until close())

    def emit(self, type: str, *, durable: bool = False, **fields: Any) -> dict[str, Any]:
        """Write one event; `durable` fsyncs it (epochs, checkpoints, the end)."""
        fault("event")
        self.seq += 1
        event = {"seq": self.seq, "t": time.time(), "type": type, **fields}
        self._fh.write(json.dumps(event, default=_plain) + "\n")
        self._fh.flush()
        if durable:
            os.fsync(self._fh.fileno())
        return event

    def close(self) -> None:
        """Flush, fsync and close."""
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def _plain(value: Any) -> Any:
    """JSON fallback for numpy / torch scalars."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events from byte `offset` on, and the offset after the last complete line.

    A torn last line (the trainer is mid-write) stays for the next call; a line that is not
    JSON is skipped so one bad byte never stops ingestion.
    """
    items, end = read_jsonl(path, offset)
    return [item for item in items if isinstance(item.get("seq"), int)], end

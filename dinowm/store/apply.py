# SPDX-License-Identifier: MIT
"""Trainer events (dinowm.events) mapped onto runs.db rows, inside the ingest transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import sqlite_utils

from dinowm.store.sql import GPU_SUMMARY_SQL, TELEMETRY_SUMMARY_SQL


def apply_event(db: sqlite_utils.Database, run_id: str, event: dict[str, Any]) -> None:
    """Map one trainer event (see dinowm.events) onto rows; called inside a transaction."""
    kind, seq, t = event["type"], event["seq"], event.get("t", time.time())
    apply = APPLY.get(kind)
    if apply is not None:
        apply(db, run_id, event, seq, t)


def _start(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """The trainer started: the batch it trains with, the encoder, and the event as it came."""
    start = {k: v for k, v in event.items() if k not in ("seq", "type")}
    db.table("runs").update(
        run_id,
        {
            k: event.get(k)
            for k in (
                "batches_per_epoch",
                "batch_size",
                "encoder_label",
                "micro_batch",
                "grad_accum",
            )
            if event.get(k) is not None
        }
        | {
            "step": event.get("step", 0),
            "phase": "startup",
            "last_heartbeat": t,
            "start_json": json.dumps(start),
        },
    )


def _heartbeat(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """A sign of life; with a step, where training is: loss, speed, ETA."""
    fields: dict[str, Any] = {"last_heartbeat": t}
    if "step" in event:
        fields.update(
            step=event["step"],
            last_loss=event.get("loss"),
            samples_per_s=event.get("samples_per_s"),
            eta_s=event.get("eta_s"),
            phase="train",
        )
    db.table("runs").update(run_id, fields)


def _phase(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """What the trainer does now (validation, checkpoint, ...)."""
    db.table("runs").update(run_id, {"phase": event.get("phase"), "last_heartbeat": t})


def _epoch(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """An epoch's row: its metrics with the telemetry of its span (per GPU when several)."""
    fields = {k: event.get(k) for k in EPOCH_FIELDS if k in event}
    summary = next(
        iter(
            db.query(
                TELEMETRY_SUMMARY_SQL,
                [run_id, event.get("started_at", t), event.get("ended_at", t)],
            )
        )
    )
    fields.update({k: v for k, v in summary.items() if v is not None and k != "samples"})
    gpus = [
        dict(r)
        for r in db.query(
            GPU_SUMMARY_SQL, [run_id, event.get("started_at", t), event.get("ended_at", t)]
        )
    ]
    if len(gpus) > 1:  # one GPU: the run's summary above says it all
        fields["gpus_json"] = json.dumps(gpus)
    upsert_epoch_row(db, run_id, event["epoch"], {**event.get("metrics", {}), **fields, "seq": seq})
    db.table("runs").update(run_id, {"epoch": event["epoch"], "last_heartbeat": t})


def _checkpoint(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """A checkpoint the trainer committed."""
    db.table("checkpoints").upsert(
        {
            "run_id": run_id,
            "path": event["path"],
            "kind": event.get("kind"),
            "epoch": event.get("epoch"),
            "step": event.get("step"),
            "sha256": event.get("sha256"),
            "size": event.get("size"),
            "t": t,
        },
        pk=("run_id", "path"),
    )


def _incident(
    db: sqlite_utils.Database, run_id: str, event: dict[str, Any], seq: int, t: float
) -> None:
    """An incident the trainer reported, or its error (whose fields become the details)."""
    kind = event["type"]
    details = dict(event.get("details") or {})
    if kind == "error":
        details.update(
            {k: v for k, v in event.items() if k not in ("seq", "t", "type", "kind", "message")}
        )
    row = {
        "run_id": run_id,
        "t": t,
        "kind": event.get("kind", kind),
        "summary": event.get("summary") or event.get("message") or kind,
        "details_json": json.dumps(details, default=str),
        "seq": seq,
        "attempt": event.get("attempt"),
        "epoch": event.get("epoch"),
        "step": event.get("step"),
    }
    db.table("incidents").insert(row)


# What each trainer event type does to the rows; the other types leave them as they are.
APPLY: dict[str, Callable[[sqlite_utils.Database, str, dict[str, Any], int, float], None]] = {
    "start": _start,
    "heartbeat": _heartbeat,
    "phase": _phase,
    "epoch": _epoch,
    "checkpoint": _checkpoint,
    "incident": _incident,
    "error": _incident,
}


EPOCH_FIELDS = (
    "attempt",
    "train_loss",
    "val_loss",
    "z_err_pred",
    "started_at",
    "ended_at",
    "duration_s",
    "steps",
    "batch_size",
    "samples_per_s",
    "peak_gpu_mem_mib",
)


def upsert_epoch_row(
    db: sqlite_utils.Database, run_id: str, epoch: int, fields: dict[str, Any]
) -> None:
    """Merge fields into the epoch row; unknown metric names go to metrics_json."""
    columns = set(db.table("epochs").columns_dict)
    existing = list(
        db.query("select * from epochs where run_id = ? and epoch = ?", [run_id, epoch])
    )
    row: dict[str, Any] = dict(existing[0]) if existing else {"run_id": run_id, "epoch": epoch}
    metrics = json.loads(row.get("metrics_json") or "{}")
    for key, value in fields.items():
        if key in columns:
            row[key] = value
        else:
            metrics[key] = value
    row["metrics_json"] = json.dumps(metrics, sort_keys=True)
    db.table("epochs").upsert(row, pk=("run_id", "epoch"))

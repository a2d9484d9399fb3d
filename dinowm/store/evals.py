# SPDX-License-Identifier: MIT
"""Evaluation rows: one per evaluated checkpoint of a run, from `dinowm eval`'s records.

The record (one line of the run folder's evaluations.jsonl) is the contract; the row keeps the
numbers runs and checkpoints are compared by as columns, and the rest as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from dinowm.errors import DinowmError, NotFoundError
from dinowm.store.connection import Connection

JSON_PARTS = ("metrics", "settings", "curves", "goals", "pictures")
ROLLOUT_KEYS = (
    "val_z_visual_err_rollout",
    "val_z_visual_err_rollout_1framestart",
    "train_z_visual_err_rollout",
    "train_z_visual_err_rollout_1framestart",
)


def evaluation_row(record: dict[str, Any]) -> dict[str, Any]:
    """The evaluations row of a record; the first planner's numbers are its columns."""
    if not isinstance(record.get("run_id"), str) or not isinstance(record.get("checkpoint"), str):
        raise DinowmError(
            f"An evaluation record needs 'run_id' and 'checkpoint' (got run_id "
            f"{record.get('run_id')!r}, checkpoint {record.get('checkpoint')!r}); "
            f"write records as dinowm eval does."
        )
    settings = record.get("settings") or {}
    metrics = record.get("metrics") or {}
    planners = [str(p) for p in settings.get("planners") or []]
    first = planners[0] if planners else None

    def planner(name: str) -> Any:
        return metrics.get(f"{first}_{name}") if first else None

    return {
        "run_id": record["run_id"],
        "checkpoint": record["checkpoint"],
        "epoch": record.get("epoch"),
        "step": record.get("step"),
        "sha256": record.get("sha256"),
        "status": record.get("status"),
        "created_at": record.get("created_at"),
        "duration_s": record.get("duration_s"),
        "device": record.get("device"),
        "horizon": settings.get("horizon"),
        "episodes": settings.get("episodes"),
        "planners": ",".join(planners) or None,
        "plan_score": metrics.get("plan_score"),
        "rollout_z_visual_err": metrics.get("rollout_z_visual_err"),
        "oracle_ratio": planner("oracle_ratio"),
        "action_err": planner("action_err"),
        "rank_true_vs_random": metrics.get("rank_true_vs_random"),
        "img_psnr": planner("img_psnr"),
        **{
            f"{part}_json": json.dumps(
                record.get(part) or ([] if part == "goals" else {}), sort_keys=True, default=str
            )
            for part in JSON_PARTS
        },
    }


def decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its JSON columns as metrics, settings, curves, goals and pictures."""
    out = {k: v for k, v in row.items() if not k.endswith("_json")}
    for part in JSON_PARTS:
        try:
            out[part] = json.loads(row.get(f"{part}_json") or "null")
        except ValueError:
            out[part] = None
    return out


class EvaluationRows(Connection):
    """Mixed into Store: evaluations written and read."""

    def add_evaluation(self, record: dict[str, Any]) -> None:
        """Record one checkpoint's evaluation; a re-evaluation of the checkpoint replaces it."""
        row = evaluation_row(record)
        try:
            self.transaction(lambda db: db.table("evaluations").insert(row, replace=True))
        except sqlite3.IntegrityError:
            raise NotFoundError(
                f"No run '{row['run_id']}' in {self.path} for the evaluation "
                f"of {row['checkpoint']}; 'dinowm runs' lists the run ids, "
                f"'dinowm reindex' rebuilds runs.db from the run "
                f"folders."
            ) from None

    def evaluations(self, run_id: str) -> list[dict[str, Any]]:
        """A run's evaluations, decoded, in epoch order."""
        return [
            decoded(r)
            for r in self._query(
                "select * from evaluations where run_id = ? order by epoch, checkpoint", [run_id]
            )
        ]

    def evaluations_of(self, ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """run id → its evaluations, decoded, in epoch order (ids None: every run that has
        one)."""
        return {
            run_id: [decoded(r) for r in rows]
            for run_id, rows in self._by_run(
                "select * from evaluations", ids, "epoch, checkpoint"
            ).items()
        }

    def evaluated_run_ids(self) -> list[str]:
        """Runs with at least one evaluation, oldest first."""
        return [
            r["id"]
            for r in self._query(
                "select id from runs where id in (select run_id from evaluations) "
                "order by created_at, id"
            )
        ]

    def epoch_rollouts_of(self, ids: list[str] | None) -> dict[str, dict[int, dict[str, Any]]]:
        """run id → epoch → the trainer's open-loop rollout errors of that epoch (the partial
        index epochs_rollout: runs whose epochs have none cost nothing)."""
        columns = ", ".join(f"json_extract(metrics_json, '$.{k}') as [{k}]" for k in ROLLOUT_KEYS)
        select = f"select run_id, epoch, {columns} from epochs"
        params: list[Any] = []
        where = " where instr(metrics_json, '_rollout') > 0"
        if ids is not None:
            where += " and run_id in (select value from json_each(?))"
            params.append(json.dumps(ids))
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for row in self._query(select + where + " order by run_id, epoch", params):
            values = {k: row[k] for k in ROLLOUT_KEYS if row[k] is not None}
            if values:
                out.setdefault(row["run_id"], {})[row["epoch"]] = values
        return out

# SPDX-License-Identifier: MIT
"""The evaluation comparison: one row per evaluated checkpoint, with its epoch's losses, the best
by planning and the best by val loss. What `dinowm evals`, the TUI's Evaluation tab and the
log's Evaluation section show (each renders it its own way)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dinowm.errors import NotFoundError
from dinowm.formats import fmt_num
from dinowm.store import Store

# (key of a row, short header); the run column is left out where only one run is shown.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("checkpoint", "checkpoint"),
    ("epoch", "epoch"),
    ("val_loss", "val loss"),
    ("z_err_pred", "z_err_pred"),
    ("rollout_z_visual_err", "rollout@H"),
    ("plan_score", "plan score"),
    ("oracle_ratio", "oracle ratio"),
    ("action_err", "action err"),
    ("rank_true_vs_random", "rank true>rand"),
    ("img_psnr", "img PSNR"),
    ("status", "status"),
)

# What each number means, for a command's help and the views' legends.
MEANINGS: dict[str, str] = {
    "val_loss": "the validation loss of the checkpoint's epoch (training)",
    "rollout_z_visual_err": "open-loop prediction error (latent MSE) after H steps from "
    "held-out frames",
    "plan_score": "what checkpoints are ranked by: the first planner's action error against "
    "the true actions (lower is better)",
    "oracle_ratio": "final latent distance to the goal reached by the first planner's actions "
    "divided by that of the true actions (below 1: the planner found actions "
    "the model thinks reach the goal better than what happened)",
    "action_err": "MSE between the first planner's and the true (normalised) actions",
    "rank_true_vs_random": "share of random action sequences the objective ranks below the "
    "true ones (1.0: always prefers the true actions; 0.5: chance)",
    "img_psnr": "PSNR of the decoded imagined final frame (first planner) against the goal image",
}


@dataclass(frozen=True)
class EvalTable:
    """Evaluated checkpoints sorted by plan score (missing last), and the two bests."""

    rows: list[dict[str, Any]]
    best_plan: dict[str, Any] | None  # lowest plan score
    best_val: dict[str, Any] | None  # lowest val loss of the evaluated checkpoints' epochs

    def verdict(self, with_run: bool = True) -> str | None:
        """One line: which checkpoint is best by planning and by val loss, and if they differ."""
        if self.best_plan is None:
            return (
                None
                if self.best_val is None
                else f"No plan score yet; best by val loss: {name(self.best_val, with_run)}."
            )
        plan = (
            f"{name(self.best_plan, with_run)} (plan score {fmt_num(self.best_plan['plan_score'])})"
        )
        if self.best_val is None:
            return f"Best by planning: {plan}."
        if same(self.best_plan, self.best_val):
            return f"Best by planning and by val loss: {plan}."
        return (
            f"Best by planning: {plan}; best by val loss: {name(self.best_val, with_run)} "
            f"(val loss {fmt_num(self.best_val['val_loss'])}): the lowest val loss is not "
            f"the checkpoint that plans best."
        )


def name(row: Mapping[str, Any], with_run: bool = True) -> str:
    """'run name/epoch_0002.pth' (or the checkpoint alone)."""
    run = row.get("run") or row["run_id"]
    return f"{run}/{row['checkpoint']}" if with_run else str(row["checkpoint"])


def same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two rows are the same run's same checkpoint."""
    return (
        a is not None
        and b is not None
        and (a["run_id"], a["checkpoint"]) == (b["run_id"], b["checkpoint"])
    )


def evaluation_table(
    evaluations: Iterable[Mapping[str, Any]],
    epochs: Mapping[str, Iterable[Mapping[str, Any]]],
    names: Mapping[str, str] | None = None,
) -> EvalTable:
    """Join evaluations (Store.evaluations rows) with their epochs' val loss and z_err_pred."""
    by_epoch = {(run_id, e["epoch"]): e for run_id, rows in epochs.items() for e in rows}
    rows = []
    for ev in evaluations:
        epoch = by_epoch.get((ev["run_id"], ev.get("epoch")))
        rows.append(
            {
                **ev,
                "run": (names or {}).get(ev["run_id"]) or ev["run_id"],
                "val_loss": epoch["val_loss"] if epoch is not None else None,
                "z_err_pred": epoch["z_err_pred"] if epoch is not None else None,
            }
        )
    rows.sort(
        key=lambda r: (
            r.get("plan_score") is None,
            r.get("plan_score") or 0.0,
            r["run_id"],
            r.get("epoch") or 0,
            r["checkpoint"],
        )
    )
    return EvalTable(rows, _lowest(rows, "plan_score"), _lowest(rows, "val_loss"))


def _lowest(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    have = [r for r in rows if r.get(key) is not None]
    return min(have, key=lambda r: r[key]) if have else None


def load_table(store: Store, refs: list[str] | tuple[str, ...] = ()) -> EvalTable:
    """The comparison of the given runs (ids, prefixes, names, 'latest'), or of every run with
    evaluations; an error names what has none."""
    ids = (
        list(dict.fromkeys(store.run(r)["id"] for r in refs)) if refs else store.evaluated_run_ids()
    )
    evaluations = store.evaluations_of(ids)
    if not any(evaluations.values()):
        which = ", ".join(ids) if refs else "no run"
        raise NotFoundError(
            f"No evaluations of {which} yet; 'dinowm eval RUN' evaluates a run's checkpoints."
        )
    names = {r["id"]: r.get("name") or r["id"] for r in store.runs_oldest_first(ids)}
    return evaluation_table(
        [e for run_id in ids for e in evaluations[run_id]], store.epoch_rows_of(ids), names
    )


def cells(row: Mapping[str, Any]) -> dict[str, str]:
    """A row's values as text, by column key ('-' where missing)."""
    return {
        "run": str(row.get("run") or row["run_id"]),
        "checkpoint": str(row["checkpoint"]),
        "epoch": "-" if row.get("epoch") is None else str(row["epoch"]),
        **{
            k: fmt_num(row.get(k))
            for k in (
                "val_loss",
                "z_err_pred",
                "rollout_z_visual_err",
                "plan_score",
                "oracle_ratio",
                "action_err",
            )
        },
        "rank_true_vs_random": fmt_num(row.get("rank_true_vs_random"), 3),
        "img_psnr": "-" if row.get("img_psnr") is None else f"{row['img_psnr']:.1f}",
        "status": str(row.get("status") or "-"),
    }


def horizon_curve(row: Mapping[str, Any]) -> list[tuple[int, dict[str, float | None]]]:
    """(horizon step, {z_visual_err, z_proprio_err, img_mse, img_psnr, img_ssim}) per step."""
    curves = row.get("curves") or {}
    steps = curves.get("horizon") or []
    keys = ("z_visual_err", "z_proprio_err", "img_mse", "img_psnr", "img_ssim")

    def at(key: str, i: int) -> float | None:
        values = curves.get(key) or []
        return values[i] if i < len(values) else None

    return [(int(h), {k: at(k, i) for k in keys}) for i, h in enumerate(steps)]

# SPDX-License-Identifier: MIT
"""The comparison table of several runs: the hyperparameters that differ and the outcomes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from dinowm.export.hyper import ORDER
from dinowm.export.markdown import Ctx, code, foreign, plain, table
from dinowm.export.progress import at_epoch
from dinowm.export.record import RunRecord
from dinowm.export.sections import duration, status
from dinowm.export.troubleshoot import ACTIONS
from dinowm.formats import fmt_duration, fmt_num

# Hyperparameters: what shapes the data, the model and the optimisation (not supervision).
HYPER_SECTIONS = ("", "data", "training", "model")


@dataclass
class Row:
    """What the comparison needs of one run; small, as it may come back from a worker."""

    values: dict[str, Any]  # the run's hyperparameters (flat keys)
    head: list[str]  # run, name, status
    tail: list[str]  # epochs, best val loss, best z_err_pred, duration, incidents
    plan: str | None = None  # the best planning score of `dinowm eval`, when evaluated


def summarize(ctx: Ctx, rec: RunRecord) -> Row:
    """One run's row of the comparison, before the differing columns are known."""
    run = rec.run
    return Row(
        {k: v for k, v in rec.values.items() if k.rpartition(".")[0] in HYPER_SECTIONS},
        [code(run["id"]), foreign(run.get("name") or "-"), status(rec, reason=False)],
        [
            f"{run.get('epoch')} / {run.get('epochs_target') or '-'}",
            _best(rec, "val_loss"),
            _best(rec, "z_err_pred"),
            fmt_duration(duration(ctx, rec)),
            _incidents(rec),
        ],
        best_plan(rec.evaluations),
    )


def results(
    epochs: list[dict[str, Any]], evaluations: list[dict[str, Any]]
) -> dict[str, str | None]:
    """What a comparison sets the differing keys against: best val loss, best z_err_pred (each
    with its epoch) and the best plan score (None when the run was not evaluated)."""
    out: dict[str, str | None] = {}
    for key in ("val_loss", "z_err_pred"):
        value, epoch = at_epoch(epochs, key, min)
        out[f"best {key.replace('_loss', ' loss')}"] = (
            None if value is None else f"{fmt_num(value)} (Epoch {epoch})"
        )
    out["best plan score"] = best_plan(evaluations)
    return out


def best_plan(evaluations: list[dict[str, Any]]) -> str | None:
    """The lowest planning score of a run's evaluated checkpoints, with its epoch; None when
    no checkpoint has one."""
    scored = [e for e in evaluations if e.get("plan_score") is not None]
    if not scored:
        return None
    best = min(scored, key=lambda e: e["plan_score"])
    return f"{fmt_num(best['plan_score'])} (Epoch {best.get('epoch')})"


def differing_keys(rows: list[Row]) -> list[str]:
    """Hyperparameter keys whose value is not the same in every run, in schema order."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row.values)
    missing = object()
    differ = [k for k in keys if len({repr(row.values.get(k, missing)) for row in rows}) > 1]
    return sorted(differ, key=lambda k: (ORDER.get(k, len(ORDER)), k))


def _best(rec: RunRecord, key: str) -> str:
    value, epoch = at_epoch(rec.epochs, key, min)
    return "-" if value is None else f"{fmt_num(value)} (Epoch {epoch})"


def _incidents(rec: RunRecord) -> str:
    counts = Counter(i["kind"] for i in rec.incidents if i["kind"] not in ACTIONS)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "-"


def comparison(ctx: Ctx, rows: list[Row]) -> list[str]:
    """## Comparison: one row per run, the hyperparameters that differ as columns."""
    keys = differing_keys(rows)
    planned = any(row.plan for row in rows)  # the column only where a run was evaluated
    head = [
        "Run",
        "Name",
        "Status",
        *(code(k) for k in keys),
        ctx("epochs"),
        ctx("best_val_loss"),
        ctx("best_z_err_pred"),
        *([ctx("best_plan_score")] if planned else []),
        ctx("duration"),
        ctx("incidents"),
    ]
    lines = [
        [
            *row.head,
            *(foreign(plain(row.values[k])) if k in row.values else None for k in keys),
            *row.tail[:3],
            *([row.plan or "-"] if planned else []),
            *row.tail[3:],
        ]
        for row in rows
    ]
    intro = ctx("compare_intro", n=len(rows)) if keys else ctx("compare_same", n=len(rows))
    return [f"## {ctx('h_compare')}", "", intro, "", *table(head, lines)]

"""The comparison table of several runs: the hyperparameters that differ and the outcomes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dinowm.export.hyper import ORDER
from dinowm.export.markdown import Ctx, code, plain, table
from dinowm.export.record import RunRecord
from dinowm.export.sections import duration, status
from dinowm.export.troubleshoot import ACTIONS
from dinowm.views import fmt_duration, fmt_num

# Hyperparameters: what shapes the data, the model and the optimisation (not supervision).
HYPER_SECTIONS = ("", "data", "training", "model")


def differing_keys(records: list[RunRecord]) -> list[str]:
    """Hyperparameter keys whose value is not the same in every run, in schema order."""
    keys: set[str] = set()
    for rec in records:
        keys.update(k for k in rec.values if k.rpartition(".")[0] in HYPER_SECTIONS)
    missing = object()
    differ = [k for k in keys
              if len({repr(rec.values.get(k, missing)) for rec in records}) > 1]
    return sorted(differ, key=lambda k: (ORDER.get(k, len(ORDER)), k))


def _best(rec: RunRecord, key: str) -> str:
    values = [(e[key], e["epoch"]) for e in rec.epochs if e.get(key) is not None]
    if not values:
        return "-"
    value, epoch = min(values)
    return f"{fmt_num(value)} (Epoch {epoch})"


def _incidents(rec: RunRecord) -> str:
    counts = Counter(i["kind"] for i in rec.incidents if i["kind"] not in ACTIONS)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "-"


def comparison(ctx: Ctx, records: list[RunRecord]) -> list[str]:
    """## Comparison: one row per run."""
    keys = differing_keys(records)
    head = ["Run", "Name", "Status", *(code(k) for k in keys), ctx("epochs"),
            ctx("best_val_loss"), ctx("best_z_err_pred"), ctx("duration"), ctx("incidents")]
    rows: list[list[Any]] = []
    for rec in records:
        run = rec.run
        values = [plain(rec.values[k]) if k in rec.values else None for k in keys]
        rows.append([code(run["id"]), run.get("name"), status(rec, reason=False), *values,
                     f"{run.get('epoch')} / {run.get('epochs_target') or '-'}",
                     _best(rec, "val_loss"), _best(rec, "z_err_pred"),
                     fmt_duration(duration(ctx, rec)), _incidents(rec)])
    intro = ctx("compare_intro", n=len(records)) if keys else ctx("compare_same", n=len(records))
    return [f"## {ctx('h_compare')}", "", intro, "", *table(head, rows)]

# SPDX-License-Identifier: MIT
"""## 4.1 Evaluation of a run's checkpoints (`dinowm eval`): the table, the best checkpoint,
the error against the horizon as an SVG, links to the goal pictures."""

from __future__ import annotations

import os
from pathlib import Path

from dinowm.export.evaltable import COLUMNS, EvalTable, cells, evaluation_table, name, same
from dinowm.export.markdown import Ctx, code, foreign, table
from dinowm.export.record import RunRecord
from dinowm.export.svg import lines_svg

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
HEADERS = {
    "checkpoint": "Checkpoint",
    "epoch": "Epoch",
    "val_loss": "Val Loss",
    "z_err_pred": "z_err_pred",
    "rollout_z_visual_err": "Rollout z@H",
    "plan_score": "Plan Score",
    "oracle_ratio": "Oracle Ratio",
    "action_err": "Action Err",
    "rank_true_vs_random": "Rank True>Random",
    "img_psnr": "Img PSNR",
    "status": "Status",
}


def horizon_name(md_name: str, run_id: str) -> str:
    """'run-20260107-093348-ab12-horizon.svg' next to 'run.md'."""
    stem = md_name[:-3] if md_name.lower().endswith(".md") else md_name
    return f"{stem}-{run_id}-horizon.svg"


def has_horizon(rec: RunRecord) -> bool:
    """A horizon plot is drawn when an evaluation has its curve."""
    return any((e.get("curves") or {}).get("horizon") for e in rec.evaluations)


def horizon_svg(rec: RunRecord, title: str, x_label: str) -> str:
    """One line per checkpoint: z_visual_err against the horizon step."""
    steps = sorted(
        {h for e in rec.evaluations for h in (e.get("curves") or {}).get("horizon") or []}
    )
    series = []
    for i, e in enumerate(e for e in rec.evaluations if (e.get("curves") or {}).get("horizon")):
        curves = e["curves"]
        at = dict(zip(curves["horizon"], curves.get("z_visual_err") or []))
        series.append((str(e["checkpoint"]), PALETTE[i % len(PALETTE)], [at.get(h) for h in steps]))
    return lines_svg(steps, series, title, x_label)


def evaluation(ctx: Ctx, rec: RunRecord) -> list[str]:
    """The section, or nothing for a run without evaluations (its log reads as before)."""
    if not rec.evaluations:
        return []
    ev = evaluation_table(rec.evaluations, {rec.id: rec.epochs})
    planners = sorted(
        {p for e in rec.evaluations for p in (e.get("planners") or "").split(",") if p}
    )
    out = [
        f"## {ctx('h_eval')}",
        "",
        ctx("eval_intro", n=len(ev.rows), planners=foreign(", ".join(planners) or "-")),
        "",
    ]
    best = _best_line(ctx, ev)
    if best:
        out += [best, ""]
    keys = [k for k, _ in COLUMNS if k != "run"]
    lines = []
    for row in ev.rows:
        text = cells(row)
        mark = ("★" if same(row, ev.best_plan) else "") + ("◆" if same(row, ev.best_val) else "")
        lines.append(
            [
                f"{code(text['checkpoint'])}{' ' + mark if mark else ''}",
                *(foreign(text[k]) for k in keys[1:]),
            ]
        )
    out += table([HEADERS[k] for k in keys], lines, "l" + "r" * (len(keys) - 2) + "l")
    out += [
        "",
        f"- **Rollout z@H**: {ctx('m_rollout')}",
        f"- **Plan Score**: {ctx('m_plan')}",
        f"- **Oracle Ratio**: {ctx('m_oracle')}",
        f"- **Rank True>Random**: {ctx('m_rank')}",
        f"- **Img PSNR**: {ctx('m_psnr')}",
    ]
    if has_horizon(rec):
        out += ["", f"![{ctx('eval_curve')}]({horizon_name(ctx.doc, rec.id)})"]
    goals = _goal_links(ctx, rec)
    if goals:
        out += ["", f"### {ctx('h_eval_goals')}", "", *goals]
    return out


def _best_line(ctx: Ctx, ev: EvalTable) -> str | None:
    if ev.best_plan is None:
        return None
    line = (
        f"**{ctx('eval_best')}:** {code(name(ev.best_plan, False))} (Plan Score "
        f"{cells(ev.best_plan)['plan_score']})"
    )
    if ev.best_val is not None:
        verdict = ctx("eval_same") if same(ev.best_plan, ev.best_val) else ctx("eval_differ")
        line += (
            f"; {ctx('eval_best_val')}: {code(name(ev.best_val, False))} (Val Loss "
            f"{cells(ev.best_val)['val_loss']}): {verdict}."
        )
    return line


def _goal_links(ctx: Ctx, rec: RunRecord) -> list[str]:
    """Per checkpoint, links to its goal pictures that exist in the run folder."""
    if rec.folder != "ok" or rec.run_dir is None:
        return []
    out = []
    for e in rec.evaluations:
        paths = [
            rec.run_dir / p
            for p in (e.get("pictures") or {}).get("goals") or []
            if isinstance(p, str)
        ]
        links = [f"[{foreign(p.name)}]({_link(p, ctx.folder)})" for p in paths if p.is_file()]
        if links:
            out.append(f"- {code(e['checkpoint'])} ({ctx('eval_pictures')}): {', '.join(links)}")
    return out


def _link(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()

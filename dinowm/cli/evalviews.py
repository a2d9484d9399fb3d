# SPDX-License-Identifier: MIT
"""Rich renderings of evaluations: the comparison of evaluated checkpoints across runs."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from dinowm.export.evaltable import COLUMNS, EvalTable, cells, same
from dinowm.formats import STATUS_STYLE, literal, literal_text

NUMERIC = {
    "epoch",
    "val_loss",
    "z_err_pred",
    "rollout_z_visual_err",
    "plan_score",
    "oracle_ratio",
    "action_err",
    "rank_true_vs_random",
    "img_psnr",
}
# The order in which columns give way when the terminal is too narrow (higher goes first);
# the checkpoint, its epoch, plan score and val loss always stay.
GIVE_WAY = {
    "z_err_pred": 6,
    "img_psnr": 5,
    "rank_true_vs_random": 4,
    "action_err": 3,
    "status": 2,
    "oracle_ratio": 1,
    "rollout_z_visual_err": 1,
    "run": 1,
}


def evals_view(table: EvalTable, width: int = 200) -> Group:
    """`dinowm evals`: one row per run and checkpoint, sorted by plan score, bests marked."""
    texts = [{k: literal(v) for k, v in cells(row).items()} for row in table.rows]
    need = {k: max([len(h)] + [len(t[k]) for t in texts]) for k, h in COLUMNS}
    keep = [k for k, _ in COLUMNS]
    for key in sorted(GIVE_WAY, key=lambda k: -GIVE_WAY[k]):
        if sum(need[k] + 3 for k in keep) + 4 <= width:
            break
        keep.remove(key)
    out = Table(
        title=f"{len(table.rows)} evaluated checkpoint{'s' * (len(table.rows) != 1)}"
        f", best first by plan score (lower is better)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    out.add_column("", no_wrap=True)
    headers = dict(COLUMNS)
    for key in keep:
        out.add_column(
            headers[key],
            justify="right" if key in NUMERIC else "left",
            no_wrap=True,
            min_width=need[key],
        )
    for row, text in zip(table.rows, texts):
        marks = ("★" if same(row, table.best_plan) else "") + (
            "◆" if same(row, table.best_val) else ""
        )
        style = STATUS_STYLE.get(row.get("status") or "", ("", ""))[1]
        out.add_row(
            Text(marks, style="bold yellow"),
            *(Text(text[k], style=style if k == "status" else "") for k in keep),
        )
    verdict = table.verdict()
    legend = Text("★ best by planning  ◆ best by val loss", style="dim")
    return Group(out, *([literal_text(verdict)] if verdict else []), legend)

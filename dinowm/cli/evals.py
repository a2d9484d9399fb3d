"""Evaluation commands: evals (the comparison of evaluated checkpoints)."""

from __future__ import annotations

import textwrap
from typing import Any

import click

from dinowm.cli.base import HELP, State, console, echo_json, main
from dinowm.export.evaltable import COLUMNS, MEANINGS


def _columns_help() -> str:
    """The columns and what their numbers mean, for --help."""
    return "\n".join(textwrap.fill(MEANINGS[key], 96, initial_indent=f"  {header:<15} ",
                                   subsequent_indent=" " * 18)
                     for key, header in COLUMNS if key in MEANINGS)


@main.command(context_settings=HELP, epilog="\b\nColumns:\n" + _columns_help())
@click.argument("runs", nargs=-1)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON (every row with its metrics, curves and goals) instead of a "
                   "table.")
@click.pass_obj
def evals(state: State, runs: tuple[str, ...], as_json: bool) -> None:
    """Compare the evaluated checkpoints of RUNS (default: every run with evaluations).

    One row per run and checkpoint, sorted by plan score (lower is better), with the val loss
    and z_err_pred of the checkpoint's epoch. ★ marks the best by planning, ◆ the best by val
    loss; a line under the table says whether they are the same checkpoint.

    \b
    Examples:
      dinowm evals                      every evaluated checkpoint of every run
      dinowm evals latest               the latest run's checkpoints
      dinowm evals 20260107 20260108    two runs side by side
      dinowm evals --json latest
    """
    from dinowm.cli.evalviews import evals_view
    from dinowm.export.evaltable import load_table

    with state.store() as store:
        table = load_table(store, runs)
    if as_json:
        echo_json({"rows": table.rows, "best_by_planning": _key(table.best_plan),
                   "best_by_val_loss": _key(table.best_val)})
    else:
        console.print(evals_view(table, console.width))


def _key(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {"run_id": row["run_id"], "checkpoint": row["checkpoint"]}

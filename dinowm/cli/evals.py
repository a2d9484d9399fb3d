# SPDX-License-Identifier: MIT
"""Evaluation commands: eval (judge a run's checkpoints offline, by rollouts and planning)
and evals (the comparison of evaluated checkpoints)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dinowm.cli.base import HELP, State, console, echo_json, main
from dinowm.errors import DinowmError
from dinowm.export.evaltable import COLUMNS, MEANINGS
from dinowm.formats import literal

if TYPE_CHECKING:
    from dinowm.evaluate.request import Evaluation


def _columns_help() -> str:
    """The columns and what their numbers mean, for --help."""
    return "\n".join(
        textwrap.fill(
            MEANINGS[key], 96, initial_indent=f"  {header:<15} ", subsequent_indent=" " * 18
        )
        for key, header in COLUMNS
        if key in MEANINGS
    )


@main.command(context_settings=HELP, epilog="\b\nColumns:\n" + _columns_help())
@click.argument("runs", nargs=-1)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (every row with its metrics, curves and goals) instead of a table.",
)
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
        echo_json(
            {
                "rows": table.rows,
                "best_by_planning": _key(table.best_plan),
                "best_by_val_loss": _key(table.best_val),
            }
        )
    else:
        console.print(evals_view(table, console.width))


def _key(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {"run_id": row["run_id"], "checkpoint": row["checkpoint"]}


def eval_flags(fn: Any) -> Any:
    """The options that shape an evaluation, as dinowm.evaluate.request.FLAGS lists them."""
    from dinowm.evaluate.request import FLAGS

    for flag in reversed(FLAGS):
        kind = click.Choice(list(flag.choices)) if flag.choices else flag.kind
        fn = click.option(
            flag.name,
            *([flag.short] if flag.short else []),
            flag.dest,
            default=flag.default,
            show_default=True,
            type=kind,
            metavar=flag.metavar,
            help=flag.help or None,
        )(fn)
    return fn


@main.command("eval", context_settings=HELP)
@click.argument("run")
@eval_flags
@click.option("--detach", "-d", is_flag=True, help="Return at once; evaluate in background.")
@click.option("--stop", "stop_it", is_flag=True, help="Stop RUN's running evaluation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (logs, the TUI).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_obj
def eval_cmd(
    state: State, run: str, detach: bool, stop_it: bool, quiet: bool, as_json: bool, **values: Any
) -> None:
    """Judge RUN's checkpoints as its users would: open-loop rollouts and planning to goals.

    Offline, no simulator: on held-out episodes it measures the rollout error against the
    horizon (latent and decoded images) and plans from a start frame to the frame HORIZON
    steps later with CEM and gradient descent, comparing the planned actions with the true
    ones. Results: outputs/RUN/evaluations.jsonl, pictures in outputs/RUN/eval/, runs.db;
    compare with 'dinowm evals'. The defaults are the public planner's.

    \b
    Examples:
      dinowm eval latest
      dinowm eval 20260107-093348 --checkpoint all --planner cem
      dinowm eval latest --episodes 4 --gd-steps 200 --detach
      dinowm eval latest --stop
    """
    from dinowm.evaluate.request import checked
    from dinowm.evaluate.watch import start_detached, stop

    with state.store() as store:
        row = store.run(run)
    run_dir = Path(row["run_dir"])
    if stop_it:
        pid = stop(run_dir)
        click.echo(
            f"asked the evaluation of {row['id']} (pid {pid}) to stop"
            if pid
            else f"no evaluation of {row['id']} is running"
        )
        return
    evaluation = checked(values, run_dir)  # one-line errors before anything starts
    if detach:
        proc = start_detached(state.project, row["id"], list(evaluation.argv))
        click.echo(
            f"evaluating {row['id']} in the background (pid {proc.pid}); "
            f"'dinowm eval {row['id']} --stop' stops it"
        )
        return
    result = _evaluate(state, row["id"], evaluation, quiet)
    if as_json:
        echo_json(result["records"])
    elif result["records"]:
        from dinowm.cli.evalviews import evals_view
        from dinowm.export.evaltable import load_table

        with state.store() as store:  # this run's every evaluated checkpoint, for comparison
            console.print(evals_view(load_table(store, [row["id"]]), console.width))
    if result["exit_code"]:
        error = DinowmError(result["message"])  # printed literally by the group
        error.exit_code = result["exit_code"]
        raise error
    if not as_json:
        click.echo(literal(result["message"], lines=True))


def _evaluate(state: State, run_id: str, evaluation: Evaluation, quiet: bool) -> dict[str, Any]:
    """The evaluation in this process, with a progress bar unless quiet; its result."""
    from dinowm.evaluate.watch import EvalWatch

    if quiet:
        return EvalWatch(
            state.project, run_id, evaluation.request, stall_s=evaluation.stall_s
        ).run_eval()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}", markup=False),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"eval {run_id}", total=None, what="starting")
        return EvalWatch(
            state.project,
            run_id,
            evaluation.request,
            stall_s=evaluation.stall_s,
            on_progress=lambda done, total, what: bar.update(
                task, completed=done, total=total, what=literal(what)
            ),
        ).run_eval()

"""Evaluation commands: eval (judge a run's checkpoints offline, by rollouts and planning)
and evals (the comparison of evaluated checkpoints)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dinowm.cli.base import HELP, State, console, echo_json, main
from dinowm.errors import DinowmError
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


@main.command("eval", context_settings=HELP)
@click.argument("run")
@click.option("--checkpoint", "-c", default="latest", show_default=True, metavar="WHICH",
              help="latest, epoch_N, or all (every kept epoch checkpoint).")
@click.option("--episodes", "-k", default=8, show_default=True, type=int,
              help="Held-out goals to plan to (and open-loop rollouts to measure).")
@click.option("--horizon", "-H", default=5, show_default=True, type=int,
              help="Steps of frameskip from start to goal (public goal_H).")
@click.option("--planner", "planners", default="cem,gd", show_default=True, metavar="P[,P]",
              help="cem, gd, or both (cem,gd); the first one ranks checkpoints.")
@click.option("--seed", default=99, show_default=True, type=int, help="Goals and planners' seed.")
@click.option("--alpha", default=1.0, show_default=True, type=float,
              help="Weight of the proprio term in the planning objective.")
@click.option("--cem-samples", default=300, show_default=True, type=int)
@click.option("--cem-topk", default=30, show_default=True, type=int)
@click.option("--cem-iterations", default=30, show_default=True, type=int)
@click.option("--gd-steps", default=1000, show_default=True, type=int)
@click.option("--gd-lr", default=1.0, show_default=True, type=float)
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="auto: the GPU when there is one.")
@click.option("--stall-s", default=300.0, show_default=True, type=float,
              help="Stop an evaluation that reports no progress for this long.")
@click.option("--detach", "-d", is_flag=True, help="Return at once; evaluate in background.")
@click.option("--stop", "stop_it", is_flag=True, help="Stop RUN's running evaluation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (logs, the TUI).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.option("--check", is_flag=True, hidden=True, help="Only validate the options (the TUI).")
@click.pass_obj
def eval_cmd(state: State, run: str, checkpoint: str, episodes: int, horizon: int,
             planners: str, seed: int, alpha: float, cem_samples: int, cem_topk: int,
             cem_iterations: int, gd_steps: int, gd_lr: float, device: str, stall_s: float,
             detach: bool, stop_it: bool, quiet: bool, as_json: bool, check: bool) -> None:
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
    from dinowm.evaluate import request as req
    from dinowm.evaluate.watch import EvalWatch, start_detached, stop

    with state.store() as store:
        row = store.run(run)
    run_dir = Path(row["run_dir"])
    if stop_it:
        pid = stop(run_dir)
        click.echo(f"asked the evaluation of {row['id']} (pid {pid}) to stop" if pid else
                   f"no evaluation of {row['id']} is running")
        return
    options = req.EvalOptions(
        checkpoint=checkpoint, episodes=episodes, horizon=horizon,
        planners=tuple(p.strip() for p in planners.split(",") if p.strip()), seed=seed,
        alpha=alpha, cem={"samples": cem_samples, "topk": cem_topk,
                          "iterations": cem_iterations, "var_scale": 1.0},
        gd={"steps": gd_steps, "lr": gd_lr, "noise": 0.003}, device=device)
    request = req.build(run_dir, options)  # one-line errors before anything starts
    if check:
        return
    if detach:
        args = ["--checkpoint", checkpoint, "--episodes", str(episodes), "--horizon",
                str(horizon), "--planner", planners, "--seed", str(seed), "--alpha", str(alpha),
                "--cem-samples", str(cem_samples), "--cem-topk", str(cem_topk),
                "--cem-iterations", str(cem_iterations), "--gd-steps", str(gd_steps),
                "--gd-lr", str(gd_lr), "--device", device, "--stall-s", str(stall_s)]
        proc = start_detached(state.project, row["id"], args)
        click.echo(f"evaluating {row['id']} in the background (pid {proc.pid}); "
                   f"'dinowm eval {row['id']} --stop' stops it")
        return
    if quiet:
        result = EvalWatch(state.project, row["id"], request, stall_s=stall_s).run_eval()
    else:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      TextColumn("{task.fields[what]}"), console=console,
                      transient=True) as bar:
            task = bar.add_task(f"eval {row['id']}", total=None, what="starting")
            result = EvalWatch(state.project, row["id"], request, stall_s=stall_s,
                               on_progress=lambda done, total, what: bar.update(
                                   task, completed=done, total=total, what=what)).run_eval()
    if as_json:
        echo_json(result["records"])
    elif result["records"]:
        from dinowm.cli.evalviews import evals_view
        from dinowm.export.evaltable import load_table

        with state.store() as store:  # this run's every evaluated checkpoint, for comparison
            console.print(evals_view(load_table(store, [row["id"]]), console.width))
    if result["exit_code"]:
        error = DinowmError(result["message"])
        error.exit_code = result["exit_code"]
        raise error
    if not as_json:
        click.echo(result["message"])

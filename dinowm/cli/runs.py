# SPDX-License-Identifier: MIT
"""Run commands: run, resume, stop, tail, runs, show, note, export-log, reindex."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dinowm.cli.base import HELP, State, console, echo_json, main, say
from dinowm.errors import ConfigError
from dinowm.rundir import RunLock
from dinowm.store import Store

if TYPE_CHECKING:
    from dinowm.backends import Launch


def slurm_options(fn: Any) -> Any:
    """--slurm and what a batch job asks for (defaults: [slurm] of dinowm.toml)."""
    for option in reversed(
        [
            click.option(
                "--slurm",
                "use_slurm",
                is_flag=True,
                help="Submit to Slurm as a batch job (run from the login node).",
            ),
            click.option("--nodes", type=int, default=None, help="Slurm: nodes (slurm.nodes)."),
            click.option(
                "--gpus-per-node",
                type=int,
                default=None,
                help="Slurm: GPUs per node, one rank each (slurm.gpus_per_node).",
            ),
            click.option("--partition", default=None, help="Slurm: partition (slurm.partition)."),
            click.option(
                "--time",
                default=None,
                metavar="HH:MM:SS",
                help="Slurm: time limit; the job checkpoints and requeues itself "
                "slurm.signal_s before it (slurm.time).",
            ),
            click.option("--account", default=None, help="Slurm: account (slurm.account)."),
        ]
    ):
        fn = option(fn)
    return fn


@main.command("run", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option("--name", default=None, help="A name for the run (default: PRESET-N).")
@click.option("--note", default=None, help="A first note attached to the run.")
@click.option(
    "--detach",
    "-d",
    is_flag=True,
    help="Return at once; the supervisor keeps running after the terminal closes.",
)
@click.option(
    "--gpus",
    default=None,
    metavar="N|auto",
    help="Train on N GPUs of this machine (one torchrun rank each; auto = all "
    "visible); sets dist.nproc_per_node.",
)
@click.argument("overrides", nargs=-1)
@slurm_options
@click.pass_obj
def run_cmd(
    state: State,
    preset: str | None,
    name: str | None,
    note: str | None,
    detach: bool,
    gpus: str | None,
    overrides: tuple[str, ...],
    use_slurm: bool,
    **slurm_flags: Any,
) -> None:
    """Start a supervised training run of PRESET with key=value OVERRIDES.

    \b
    Examples:
      dinowm run --preset demo
      dinowm run --preset franka_f5_h3 data.path=/data/franka_cube_stack_ds training.batch_size=16
      dinowm run --preset franka_f5_h3 --detach --note "fan curve JW, 100 W limit"
      dinowm run --preset franka_f5_h3 --gpus auto   (training.batch_size stays global)
      dinowm run --preset franka_f5_h3 --slurm --nodes 2 --gpus-per-node 4 --time 24:00:00
    Ctrl-C stops gracefully (checkpoint, status stopped); a second Ctrl-C stops at once.
    With --slurm the run is a batch job ([slurm] in dinowm.toml has the defaults); this
    returns once it is submitted, and 'dinowm tail RUN -f' follows it.
    """
    from dinowm import backends

    new = backends.NewRun(
        preset, overrides, name=name, note=note, gpus=gpus, argv=["dinowm", *sys.argv[1:]]
    )
    backends.launch(
        state.project,
        new,
        _how(state, detach, slurm_flags),
        where="slurm" if use_slurm else "local",
    )


def _how(state: State, detach: bool, flags: dict[str, Any]) -> Launch:
    """How the CLI starts a supervisor here (foreground or detached) and what it prints."""
    from dinowm.backends import Launch

    return Launch(
        start=lambda project, run_id, lock: _launch(state, run_id, detach, lock),
        say=say,
        flags=flags,
        warn=lambda text: say(f"warning: {text}", "yellow"),
    )


def _launch(state: State, run_id: str, detach: bool, lock: RunLock) -> None:
    """Supervise here or detached; the run's lock, held since the run was created or the
    resume was checked, passes to the supervisor."""
    from dinowm.supervise.supervisor import run_foreground, spawn_detached

    with Store(state.project.runs_db) as store:
        row = store.run(run_id)
    if detach:
        pid = spawn_detached(state.project, row["id"], lock)
        say(
            f"run {row['id']} ({row['name']}) started, supervisor pid {pid}\n"
            f"  follow:  dinowm tail {row['id']} -f\n  stop:    dinowm stop "
            f"{row['id']}\n  folder:  {row['run_dir']}"
        )
        return
    say(f"run {row['id']} ({row['name']}) in {row['run_dir']}")
    status = run_foreground(state.project, row["id"], lock)
    with Store(state.project.runs_db) as store:
        final = store.run(row["id"])
    style = "green" if status in ("completed", "stopped") else "red"
    say(
        f"run {row['id']} {status}: epoch {final['epoch']}/"
        f"{final['epochs_target']}, attempts {final['attempts']}"
        + (
            f" ({final['exit_reason']})"
            if final.get("exit_reason") and status != "completed"
            else ""
        ),
        style,
    )
    if status not in ("completed", "stopped"):
        sys.exit(1)


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--detach", "-d", is_flag=True, help="Return at once; supervise in background.")
@click.option(
    "--local",
    "use_local",
    is_flag=True,
    help="Train RUN on this machine, also a run that was a Slurm job.",
)
@click.argument("overrides", nargs=-1)
@slurm_options
@click.pass_obj
def resume(
    state: State,
    run: str,
    detach: bool,
    use_local: bool,
    overrides: tuple[str, ...],
    use_slurm: bool,
    **slurm_flags: Any,
) -> None:
    """Resume RUN from its latest checkpoint, in the same run folder, up to its target epochs.

    OVERRIDES may change resumable keys, e.g. training.epochs=150 to train further.

    \b
    RUN resumes where it ran: a run of this machine here, a cluster run as a new Slurm job
    (refused while its job still lives). --local trains a cluster run here instead, --slurm
    submits a run of this machine to Slurm. A run has one supervisor: while another one holds
    RUN this exits 1 naming it, and changes nothing.

    \b
    Examples:
      dinowm resume latest
      dinowm resume 20260107-093348 training.epochs=150 --detach
      dinowm resume 20260107-093348 --slurm --time 12:00:00
      dinowm resume 20260107-093348 --local
    """
    from dinowm.backends import resume as resume_run

    if use_local and use_slurm:
        raise ConfigError("--local and --slurm ask for two places; give one of them.")
    where = "slurm" if use_slurm else "local" if use_local else None
    resume_run(state.project, run, overrides, _how(state, detach, slurm_flags), where=where)


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--wait", is_flag=True, help="Wait until the run has stopped.")
@click.pass_obj
def stop(state: State, run: str, wait: bool) -> None:
    """Stop RUN gracefully: finish the step, checkpoint, status 'stopped'.

    A cluster run is stopped through Slurm: its supervisor gets SIGTERM (scancel --batch
    --signal=TERM) and checkpoints; a job that has not ended within the checkpoint budget is
    cancelled, a pending job at once.

    Example: dinowm stop latest --wait
    """
    import time

    from dinowm.backends import stop as stop_run
    from dinowm.rundir import ACTIVE

    with state.store() as store:
        row = stop_run(store, run, say=say)
        say(f"stop requested for {row['id']}")
        deadline = time.monotonic() + 900
        while wait and row["status"] in ACTIVE and time.monotonic() < deadline:
            time.sleep(0.5)
            row = store.run(row["id"])
        if wait:
            say(f"run {row['id']} is {row['status']}")


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option(
    "--lines",
    "-n",
    default=40,
    show_default=True,
    type=click.IntRange(min=0),
    help="Lines of the end of train.log to show first.",
)
@click.pass_obj
def tail(state: State, run: str, follow: bool, lines: int) -> None:
    """Show the end of RUN's train.log; -f follows it like tail -f.

    Example: dinowm tail latest -f
    """
    from dinowm.cli.tailing import follow_log

    with state.store() as store:
        row = store.run(run)
    follow_log(state.project.runs_db, row, lines, follow)


@main.command(context_settings=HELP)
@click.option(
    "--status",
    default=None,
    help="Only runs with this status (pending, running, "
    "completed, failed, stopped, lost, cancelled).",
)
@click.option("--limit", "-n", type=int, default=None, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def runs(state: State, status: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first.

    Example: dinowm runs --status running
    """
    from dinowm.cli import views
    from dinowm.rundir import ACTIVE

    with state.store() as store:
        rows = store.runs(status=status, limit=limit)
        samples = {
            r["id"]: store.latest_telemetry(r["id"])
            for r in rows
            if r["status"] in ACTIVE and not as_json
        }  # the GPU now, as the TUI shows
    if as_json:
        echo_json([{k: v for k, v in r.items() if k != "config_json"} for r in rows])
    else:
        console.print(views.runs_table(rows, console.width, samples))


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def show(state: State, run: str, as_json: bool) -> None:
    """Show one run: overview, epochs, incidents, notes. RUN is an id, a prefix or 'latest'.

    Example: dinowm show latest
    """
    from dinowm.cli import views

    with state.store() as store:
        row = store.run(run)
        parts = (
            store.epochs(row["id"]),
            store.incidents(row["id"]),
            store.notes(row["id"]),
            store.hardware(row["id"]),
        )
    if as_json:
        echo_json(
            {
                "run": row,
                "epochs": parts[0],
                "incidents": parts[1],
                "notes": parts[2],
                "hardware": parts[3],
            }
        )
    else:
        console.print(views.run_view(row, *parts))


@main.command(context_settings=HELP)
@click.argument("run")
@click.argument("text", nargs=-1, required=True)
@click.pass_obj
def note(state: State, run: str, text: tuple[str, ...]) -> None:
    """Attach a dated note to RUN (an id, a prefix or 'latest').

    Example: dinowm note latest "froze at epoch 12, GPU at 48 °C"
    """
    with state.store() as store:
        row = store.run(run)
        store.add_note(row["id"], " ".join(text))
    say(f"note added to {row['id']}")


@main.command("export-log", context_settings=HELP)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("runs", nargs=-1)
@click.option("--all", "all_runs", is_flag=True, help="Every run, oldest first.")
@click.option(
    "--sweep",
    default=None,
    metavar="ID",
    help="The runs of a sweep ('dinowm sweep'); the comparison is its result.",
)
@click.option(
    "--lang",
    default="en",
    show_default=True,
    type=click.Choice(["en", "de"]),
    help="Language of headings and labels (de: those of the hand-kept log).",
)
@click.pass_obj
def export_log(
    state: State, path: Path, runs: tuple[str, ...], all_runs: bool, sweep: str | None, lang: str
) -> None:
    """Write the Markdown training log of RUNS (default: the latest run) to PATH.

    Re-exporting to the same file rewrites only the generated blocks between
    <!-- dinowm:begin ... --> and <!-- dinowm:end ... --> and keeps your own lines.
    A loss curve (PATH-stem-RUNID-loss.svg) is written next to it from two epochs on, and
    for a run evaluated with 'dinowm eval' its error against the horizon
    (PATH-stem-RUNID-horizon.svg) beside an Evaluation section. With several runs the log
    starts with their comparison: the hyperparameters that differ against the best val loss,
    z_err_pred and, for evaluated runs, plan score.

    \b
    Examples:
      dinowm export-log training-log.md
      dinowm export-log training-log.md 20260107-093348 --lang de
      dinowm export-log all-runs.md --all
      dinowm export-log sweep.md --sweep sw-3f9a1c
    """
    from dinowm.export import export_log as write_log

    if sum(map(bool, (runs, all_runs, sweep))) > 1:
        raise ConfigError("Give run ids, --all or --sweep ID, not two of them.")
    with state.store() as store:
        result = write_log(store, path, runs, all_runs=all_runs, lang=lang, sweep=sweep)
    images = (
        f" and {len(result.images)} image{'s' * (len(result.images) != 1)}" if result.images else ""
    )
    say(
        f"{'wrote' if result.created else 'updated'} {result.path}: "
        f"{len(result.runs)} run{'s' * (len(result.runs) != 1)}{images}"
    )


@main.command(context_settings=HELP)
@click.option("--force", is_flag=True, help="Rebuild even when runs.db is healthy.")
@click.pass_obj
def reindex(state: State, force: bool) -> None:
    """Rebuild runs.db from the run folders (when it was deleted or damaged).

    A damaged runs.db is moved aside as runs.db.damaged-TIME, never deleted.

    Example: dinowm reindex
    """
    from dinowm.backends import reindex as rebuild

    result = rebuild(state.project, force=force)
    if not result["rebuilt"]:
        say(result["reason"])
        return
    moved = f"; the old file is {result['moved_aside']}" if result["moved_aside"] else ""
    say(
        f"rebuilt {state.project.runs_db} from {len(result['runs'])} run folders "
        f"and {result['queue']} queue entries (integrity {result['integrity']})"
        f"{moved}"
    )

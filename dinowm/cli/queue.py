# SPDX-License-Identifier: MIT
"""Queue commands: queue (list), queue add/rm/move/start/pause, sweep."""

from __future__ import annotations

import click

from dinowm.cli.base import HELP, State, console, echo_json, main, say


@main.group("queue", context_settings=HELP, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def queue(ctx: click.Context, as_json: bool) -> None:
    """The queue: runs that start one after another when the GPU is free and cool.

    Without a subcommand, list the entries: position (1 starts next), id, name or preset,
    overrides, state (queued, running, completed, failed, stopped) and the run once started.

    \b
    Examples:
      dinowm queue add --preset franka_f5_h3 training.batch_size=16
      dinowm queue start --detach
      dinowm queue
    """
    if ctx.invoked_subcommand is not None:
        return
    from dinowm.cli import views
    from dinowm.queue.entries import listing

    state: State = ctx.obj
    shown = listing(state.project)
    if as_json:
        holder = shown["supervisor"]
        echo_json({**shown, "supervisor": holder.pid if holder else None})
    else:
        console.print(views.queue_view(shown, console.width))


@queue.command("add", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option("--name", default=None, help="A name for the run (default: PRESET-N).")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def add(state: State, preset: str | None, name: str | None, overrides: tuple[str, ...]) -> None:
    """Queue a run of PRESET with key=value OVERRIDES, checked now as 'dinowm run' checks it.

    Example: dinowm queue add --preset franka_f5_h3 training.batch_size=16 --name b16
    """
    from dinowm.queue.entries import add as add_entry

    entry = add_entry(state.project, preset, overrides, name)
    say(
        f"queued entry {entry['id']} ({entry['name'] or entry['preset']}) at "
        f"position {_position(state, entry['id'])}; 'dinowm queue start' runs the "
        f"queue"
    )


def _position(state: State, entry_id: int) -> int:
    from dinowm.store import Store

    with Store(state.project.runs_db) as store:
        return store.queued_ids().index(entry_id) + 1


@queue.command("rm", context_settings=HELP)
@click.argument("entry")
@click.pass_obj
def rm(state: State, entry: str) -> None:
    """Remove queue ENTRY (an id of 'dinowm queue'): a queued or ended one; a running entry
    is refused until its run is stopped ('dinowm stop RUN').

    Example: dinowm queue rm 3
    """
    from dinowm.queue.entries import remove

    row = remove(state.project, entry)
    say(f"removed entry {row['id']} ({row['name'] or row['preset']})")


@queue.command("move", context_settings=HELP)
@click.argument("entry")
@click.argument("position")
@click.pass_obj
def move(state: State, entry: str, position: str) -> None:
    """Move queued ENTRY to POSITION (1 starts next), or up, down, top, bottom.

    \b
    Examples:
      dinowm queue move 4 1
      dinowm queue move 4 up
    """
    from dinowm.queue.entries import move as move_entry

    ids = move_entry(state.project, entry, position)
    say(f"entry {entry} is at position {ids.index(int(entry)) + 1} of {len(ids)}")


@queue.command("start", context_settings=HELP)
@click.option(
    "--detach",
    "-d",
    is_flag=True,
    help="Return at once; the queue supervisor keeps running after the terminal closes.",
)
@click.pass_obj
def start(state: State, detach: bool) -> None:
    """Run the queue (and unpause it): entries start one after another, each when the GPUs
    it needs are free (no dinowm run active, their memory free) and below its
    thermal.resume_temp_c.

    One queue supervisor per project: with one running, this only unpauses. It ends when
    the queue is empty or paused. After a reboot, this picks the queue up where it was:
    a run that was cut off is resumed first.

    Example: dinowm queue start --detach
    """
    from dinowm.queue.entries import set_paused
    from dinowm.queue.runner import run_queue, start_detached, supervisor

    set_paused(state.project, False)
    holder = supervisor(state.project)
    if holder is not None:
        say(f"the queue supervisor ({holder.describe()}) runs the queue; unpaused")
        return
    if detach:
        pid = start_detached(state.project)
        say(
            f"queue supervisor started, pid {pid}\n  list:  dinowm queue\n"
            f"  log:   {state.project.queue_log}\n  pause: dinowm queue pause"
        )
        return
    why = run_queue(state.project, say=say)
    say(f"queue {why}")


@queue.command("pause", context_settings=HELP)
@click.pass_obj
def pause(state: State) -> None:
    """Start no new entry until 'dinowm queue start'; the running one goes on.

    Example: dinowm queue pause
    """
    from dinowm.queue.entries import set_paused

    set_paused(state.project, True)
    say("queue paused: the current run goes on, no new entry starts until 'dinowm queue start'")


@main.command("sweep", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option(
    "--random",
    "random_n",
    type=int,
    default=None,
    metavar="N",
    help="Draw N configurations instead of the whole grid (ranges lo:hi allowed).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the --random draws (the same seed draws the same sweep).",
)
@click.option("--name", default=None, help="Name prefix of the runs (default: the sweep id).")
@click.argument("axes", nargs=-1, required=True)
@click.pass_obj
def sweep(
    state: State,
    preset: str | None,
    random_n: int | None,
    seed: int,
    name: str | None,
    axes: tuple[str, ...],
) -> None:
    """Queue a sweep over AXES: key=v1,v2 lists (every combination), or with --random N
    also key=lo:hi ranges (uniform; two integers draw integers). A key with one value is
    the same in every configuration.

    Every configuration is checked before any is queued. The entries (and their runs) carry
    the sweep id; 'dinowm export-log sweep.md --sweep ID' compares them.

    \b
    Examples:
      dinowm sweep --preset franka_f5_h3 training.batch_size=8,16 frameskip=3,5
      dinowm sweep --preset demo --random 6 --seed 1 training.predictor_lr=1e-4:1e-3 num_hist=2,3
    """
    from dinowm.queue.entries import add_sweep

    sweep_id, entries = add_sweep(
        state.project, preset, axes, random_n=random_n, seed=seed, name=name
    )
    say(
        f"sweep {sweep_id}: queued {len(entries)} entries "
        f"({entries[0]['id']}-{entries[-1]['id']}); 'dinowm queue start' runs them"
    )

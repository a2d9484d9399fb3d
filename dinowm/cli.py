"""The `dinowm` command: thin click commands that call one function each."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dinowm import __version__
from dinowm.config import CONFIG_NAME, TEMPLATE, Project, load_project, resolve, to_dict
from dinowm.errors import ConfigError, DataError, DinowmError
from dinowm.store import Store

console = Console()
HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """A click group that turns a DinowmError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DinowmError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


class State:
    """What every command needs: where dinowm.toml is, lazily loaded."""

    def __init__(self, config: str | None):
        self.config_arg = config
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = load_project(self.config_arg)
        return self._project

    def store(self) -> Store:
        """runs.db of the project, after marking runs whose supervisor died as lost."""
        from dinowm.runs import reconcile

        store = Store(self.project.runs_db)
        reconcile(store)
        return store


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=Group, context_settings=HELP)
@click.option("--config", "config", metavar="PATH", default=None,
              help="dinowm.toml to use (default: $DINOWM_CONFIG, else the nearest one in this "
                   "folder or its parents).")
@click.version_option(__version__, prog_name="dinowm")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Train, supervise and record DINO world-model runs.

    \b
    Examples:
      dinowm init myproject           write a commented dinowm.toml
      dinowm config --preset franka_f5_h3 training.batch_size=16
      dinowm runs                     all runs, newest first
      dinowm show latest              one run: epochs, incidents, notes
    """
    ctx.obj = State(config)


@main.command(context_settings=HELP)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing dinowm.toml.")
def init(directory: Path, force: bool) -> None:
    """Write a commented dinowm.toml with the built-in presets into DIRECTORY.

    Example: dinowm init ~/dino_wm_runs
    """
    target = directory / CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; edit it, or pass --force to overwrite it.")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".toml.tmp")
    shutil.copyfile(TEMPLATE, tmp)
    tmp.replace(target)
    console.print(f"wrote {target}: presets franka_f5_h3, franka_f5_h3_b8, demo. Next: "
                  f"cd {directory} && dinowm run --preset demo")


@main.command(context_settings=HELP)
@click.pass_obj
def presets(state: State) -> None:
    """List the presets of dinowm.toml.

    Example: dinowm presets
    """
    from rich.table import Table

    project = state.project
    table = Table(title=f"presets in {project.config_path}", title_justify="left")
    for col in ("preset", "extends", "description"):
        table.add_column(col)
    for name, body in project.presets.items():
        mark = " (default)" if name == project.default_preset else ""
        table.add_row(name + mark, str(body.get("extends", "")), str(body.get("description", "")))
    console.print(table)


@main.command("config", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option("--changed", is_flag=True, help="Only keys that differ from the built-in defaults.")
@click.option("--keys", "list_keys", is_flag=True, help="List every key with type and meaning.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved config as JSON.")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def config_cmd(state: State, preset: str | None, changed: bool, list_keys: bool, as_json: bool,
               overrides: tuple[str, ...]) -> None:
    """Show the resolved configuration of a preset with key=value OVERRIDES.

    \b
    Example:
      dinowm config --preset franka_f5_h3 training.batch_size=16 frameskip=5
    """
    from dinowm import views

    if list_keys:
        console.print(views.keys_table())
        return
    resolved = resolve(state.project, preset, overrides)
    if as_json:
        _echo_json(to_dict(resolved.config))
    else:
        console.print(views.config_table(resolved, show_all=not changed))


@main.command("run", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option("--name", default=None, help="A name for the run (default: PRESET-N).")
@click.option("--note", default=None, help="A first note attached to the run.")
@click.option("--detach", "-d", is_flag=True,
              help="Return at once; the supervisor keeps running after the terminal closes.")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def run_cmd(state: State, preset: str | None, name: str | None, note: str | None,
            detach: bool, overrides: tuple[str, ...]) -> None:
    """Start a supervised training run of PRESET with key=value OVERRIDES.

    \b
    Examples:
      dinowm run --preset demo
      dinowm run --preset franka_f5_h3 data.path=/data/franka_cube_stack_ds training.batch_size=16
      dinowm run --preset franka_f5_h3 --detach --note "fan curve JW, 100 W limit"
    Ctrl-C stops gracefully (checkpoint, status stopped); a second Ctrl-C stops at once.
    """
    from dinowm.runs import create_run

    row = create_run(state.project, preset, overrides, name=name, note=note,
                     argv=["dinowm", *sys.argv[1:]])
    _launch(state, row, detach)


def _launch(state: State, row: dict[str, Any], detach: bool) -> None:
    from dinowm.supervisor import run_foreground, spawn_detached

    if detach:
        pid = spawn_detached(state.project, row["id"])
        console.print(f"run {row['id']} ({row['name']}) started, supervisor pid {pid}\n"
                      f"  follow:  dinowm tail {row['id']} -f\n  stop:    dinowm stop "
                      f"{row['id']}\n  folder:  {row['run_dir']}")
        return
    console.print(f"run {row['id']} ({row['name']}) in {row['run_dir']}")
    status = run_foreground(state.project, row["id"])
    with Store(state.project.runs_db) as store:
        final = store.run(row["id"])
    style = "green" if status in ("completed", "stopped") else "red"
    console.print(f"[{style}]run {row['id']} {status}[/]: epoch {final['epoch']}/"
                  f"{final['epochs_target']}, attempts {final['attempts']}"
                  + (f" ({final['exit_reason']})" if final.get("exit_reason") and
                     status != "completed" else ""))
    if status not in ("completed", "stopped"):
        sys.exit(1)


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--detach", "-d", is_flag=True, help="Return at once; supervise in background.")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def resume(state: State, run: str, detach: bool, overrides: tuple[str, ...]) -> None:
    """Resume RUN from its latest checkpoint, in the same run folder, up to its target epochs.

    OVERRIDES may change resumable keys, e.g. training.epochs=150 to train further.

    \b
    Examples:
      dinowm resume latest
      dinowm resume 20260107-093348 training.epochs=150 --detach
    """
    from dinowm.runs import prepare_resume

    with state.store() as store:
        row = prepare_resume(store, state.project, run, overrides)
    _launch(state, row, detach)


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--wait", is_flag=True, help="Wait until the run has stopped.")
@click.pass_obj
def stop(state: State, run: str, wait: bool) -> None:
    """Stop RUN gracefully: finish the step, checkpoint, status 'stopped'.

    Example: dinowm stop latest --wait
    """
    import time

    from dinowm.runs import request_stop
    from dinowm.store import ACTIVE

    with state.store() as store:
        row = request_stop(store, run)
        console.print(f"stop requested for {row['id']}")
        deadline = time.monotonic() + 900
        while wait and row["status"] in ACTIVE and time.monotonic() < deadline:
            time.sleep(0.5)
            row = store.run(row["id"])
        if wait:
            console.print(f"run {row['id']} is {row['status']}")


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--lines", "-n", default=40, show_default=True, type=click.IntRange(min=0),
              help="Lines of the end of train.log to show first.")
@click.pass_obj
def tail(state: State, run: str, follow: bool, lines: int) -> None:
    """Show the end of RUN's train.log; -f follows it like tail -f.

    Example: dinowm tail latest -f
    """
    from dinowm.tailing import follow_log

    with state.store() as store:
        row = store.run(run)
    follow_log(state.project.runs_db, row, lines, follow)


@main.command(context_settings=HELP)
@click.option("--status", default=None, help="Only runs with this status (running, completed, "
                                               "failed, stopped, lost).")
@click.option("--limit", "-n", type=int, default=None, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def runs(state: State, status: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first.

    Example: dinowm runs --status running
    """
    from dinowm import views

    with state.store() as store:
        rows = store.runs(status=status, limit=limit)
    if as_json:
        _echo_json([{k: v for k, v in r.items() if k != "config_json"} for r in rows])
    else:
        console.print(views.runs_table(rows))


@main.command(context_settings=HELP)
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def show(state: State, run: str, as_json: bool) -> None:
    """Show one run: overview, epochs, incidents, notes. RUN is an id, a prefix or 'latest'.

    Example: dinowm show latest
    """
    from dinowm import views

    with state.store() as store:
        row = store.run(run)
        parts = (store.epochs(row["id"]), store.incidents(row["id"]), store.notes(row["id"]),
                 store.hardware(row["id"]))
    if as_json:
        _echo_json({"run": row, "epochs": parts[0], "incidents": parts[1], "notes": parts[2],
                    "hardware": parts[3]})
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
    console.print(f"note added to {row['id']}")


@main.command("export-log", context_settings=HELP)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("runs", nargs=-1)
@click.option("--all", "all_runs", is_flag=True, help="Every run, oldest first.")
@click.option("--lang", default="en", show_default=True, type=click.Choice(["en", "de"]),
              help="Language of headings and labels (de: those of the hand-kept log).")
@click.pass_obj
def export_log(state: State, path: Path, runs: tuple[str, ...], all_runs: bool,
               lang: str) -> None:
    """Write the Markdown training log of RUNS (default: the latest run) to PATH.

    Re-exporting to the same file rewrites only the generated blocks between
    <!-- dinowm:begin ... --> and <!-- dinowm:end ... --> and keeps your own lines.
    A loss curve (PATH-stem-RUNID-loss.svg) is written next to it from two epochs on.

    \b
    Examples:
      dinowm export-log training-log.md
      dinowm export-log training-log.md 20260107-093348 --lang de
      dinowm export-log all-runs.md --all
    """
    from dinowm.export import export_log as write_log

    if all_runs and runs:
        raise ConfigError("Give run ids or --all, not both.")
    with state.store() as store:
        result = write_log(store, path, runs, all_runs=all_runs, lang=lang)
    images = f" and {len(result.images)} loss curve{'s' * (len(result.images) != 1)}" \
        if result.images else ""
    console.print(f"{'wrote' if result.created else 'updated'} {result.path}: "
                  f"{len(result.runs)} run{'s' * (len(result.runs) != 1)}{images}")


@main.command(context_settings=HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def hardware(as_json: bool) -> None:
    """Describe this machine: GPU, driver, CUDA, CPU, RAM, swap ("no GPU" is fine).

    Example: dinowm hardware
    """
    from dinowm import hardware as hw_mod, views

    hw = hw_mod.describe()
    if as_json:
        _echo_json(hw)
    else:
        console.print(views.hardware_table(hw))


@main.group(cls=Group, context_settings=HELP)
def data() -> None:
    """Inspect or generate datasets.

    \b
    Examples:
      dinowm data check /data/franka_cube_stack_ds
      dinowm data synth data/synthetic_push --episodes 16
    """


@data.command("check", context_settings=HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--layout", default="auto", show_default=True,
              type=click.Choice(["auto", "franka", "point_maze", "wall"]))
@click.option("--frameskip", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--num-hist", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--num-pred", default=1, show_default=True, type=click.IntRange(min=1, max=1))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_check(path: Path, layout: str, frameskip: int, num_hist: int, num_pred: int,
               as_json: bool) -> None:
    """Summarise a dataset without training: episodes, lengths, dims, NaNs, value ranges.

    Exits 2 when it finds a problem that would stop training.

    Example: dinowm data check /data/franka_cube_stack_ds --frameskip 5 --num-hist 3
    """
    from dinowm import dataviews
    from dinowm.train.data import check_dataset

    summary = check_dataset(path, layout, frameskip, num_hist, num_pred)
    if summary.get("episodes") is None and summary.get("problems"):
        raise DataError(summary["problems"][0])
    if as_json:
        _echo_json(summary)
    else:
        console.print(dataviews.summary_view(path, summary))
    if summary.get("problems"):
        sys.exit(2)


@data.command("synth", context_settings=HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--episodes", default=16, show_default=True, type=click.IntRange(min=2))
@click.option("--length", default=80, show_default=True, type=click.IntRange(min=2))
@click.option("--image-size", default=64, show_default=True, type=click.IntRange(min=8))
@click.option("--seed", default=0, show_default=True, type=int)
def data_synth(path: Path, episodes: int, length: int, image_size: int, seed: int) -> None:
    """Write the built-in synthetic pushing dataset (franka layout) to PATH.

    Example: dinowm data synth data/synthetic_push --episodes 16 --length 80
    """
    from dinowm.train.synth import write_synthetic_dataset

    info = write_synthetic_dataset(path, episodes=episodes, length=length,
                                   image_size=image_size, seed=seed)
    console.print(f"wrote {info['episodes']} episodes ({min(info['lengths'])}-"
                  f"{max(info['lengths'])} frames, {image_size} px) to {path}")


def entry() -> None:
    """Console-script entry point."""
    main(prog_name="dinowm")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())

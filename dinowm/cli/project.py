# SPDX-License-Identifier: MIT
"""Project commands: init, presets, config, hardware."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from dinowm.cli.base import HELP, State, console, echo_json, main, say
from dinowm.config import CONFIG_NAME, TEMPLATE, resolve, to_dict
from dinowm.errors import ConfigError
from dinowm.formats import literal, literal_text


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
    say(
        f"wrote {target}: presets franka_f5_h3, franka_f5_h3_b8, demo. Next: "
        f"cd {directory} && dinowm run --preset demo"
    )


@main.command(context_settings=HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the presets as JSON.")
@click.pass_obj
def presets(state: State, as_json: bool) -> None:
    """List the presets of dinowm.toml.

    Example: dinowm presets --json
    """
    from rich.cells import cell_len
    from rich.table import Table

    project = state.project
    if as_json:
        echo_json(
            [
                {"preset": name, "default": name == project.default_preset, **body}
                for name, body in project.presets.items()
            ]
        )
        return
    title = f"presets in {literal(project.config_path)}"  # a path: wider than its table
    table = Table(title=title, title_justify="left", min_width=cell_len(title))
    for col in ("preset", "extends", "description"):
        table.add_column(col)
    for name, body in project.presets.items():
        mark = " (default)" if name == project.default_preset else ""
        table.add_row(
            literal_text(name + mark),
            literal_text(body.get("extends", "")),
            literal_text(body.get("description", "")),
        )
    console.print(table)


@main.command("config", context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset name (default: project default).")
@click.option("--changed", is_flag=True, help="Only keys that differ from the built-in defaults.")
@click.option("--keys", "list_keys", is_flag=True, help="List every key with type and meaning.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved config as JSON.")
@click.argument("overrides", nargs=-1)
@click.pass_obj
def config_cmd(
    state: State,
    preset: str | None,
    changed: bool,
    list_keys: bool,
    as_json: bool,
    overrides: tuple[str, ...],
) -> None:
    """Show the resolved configuration of a preset with key=value OVERRIDES.

    \b
    Example:
      dinowm config --preset franka_f5_h3 training.batch_size=16 frameskip=5
    """
    from dinowm.cli import views

    if list_keys:
        console.print(views.keys_table())
        return
    resolved = resolve(state.project, preset, overrides)
    if as_json:
        echo_json(to_dict(resolved.config))
    else:
        console.print(views.config_table(resolved, show_all=not changed))


@main.command(context_settings=HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def hardware(as_json: bool) -> None:
    """Describe this machine: GPU, driver, CUDA, CPU, RAM, swap ("no GPU" is fine).

    Example: dinowm hardware
    """
    from dinowm.cli import views
    from dinowm.supervise import hardware as hw_mod

    hw = hw_mod.describe()
    if as_json:
        echo_json(hw)
    else:
        console.print(views.hardware_table(hw))

# SPDX-License-Identifier: MIT
"""The `dinowm` group and what every command shares: the project, the store, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console, ConsoleDimensions

from dinowm import __version__
from dinowm.alerts.settings import for_project as alert_settings
from dinowm.config import Project, load_project
from dinowm.errors import DinowmError
from dinowm.formats import literal, literal_text
from dinowm.store import Store

PIPED_WIDTH = 100_000  # a table printed to a pipe or a file takes the width its values need


class Output(Console):
    """The command's console: no markup or emoji codes in printed strings (foreign text is
    shown as it reads); when stdout is not a terminal and COLUMNS is not set, wide enough that
    no table cuts a value."""

    def __init__(self, stderr: bool = False) -> None:
        super().__init__(markup=False, emoji=False, stderr=stderr)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = Output()
err_console = Output(stderr=True)  # beside a JSON document on stdout (--json -)


def say(text: str, style: str = "") -> None:
    """A line of the command's output, its foreign parts shown literally, never broken by
    dinowm (a path or a command stays whole for copying)."""
    console.print(literal_text(text, style, lines=True), soft_wrap=True)


HELP = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    """A click group that turns a DinowmError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DinowmError as exc:
            click.echo(f"error: {literal(exc, lines=True)}", err=True)
            ctx.exit(exc.exit_code)


def load_checked(config: str | Path | None) -> Project:
    """The project's dinowm.toml, with its [alerts] table checked: a bad one is refused before
    any command acts (dinowm.config keeps it unparsed)."""
    project = load_project(config)
    alert_settings(project)
    return project


class State:
    """What every command needs: where dinowm.toml is, lazily loaded."""

    def __init__(self, config: str | None):
        self.config_arg = config
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = load_checked(self.config_arg)
        return self._project

    def store(self) -> Store:
        """runs.db of the project, after marking runs whose supervisor died as lost."""
        from dinowm.backends import reconcile

        store = Store(self.project.runs_db)
        reconcile(store)
        return store


def echo_json(value: Any) -> None:
    """Print JSON (datetimes and paths as strings)."""
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(cls=Group, context_settings=HELP)
@click.option(
    "--config",
    "config",
    metavar="PATH",
    default=None,
    help="dinowm.toml to use (default: $DINOWM_CONFIG, else the nearest one in this "
    "folder or its parents).",
)
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

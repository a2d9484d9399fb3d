# SPDX-License-Identifier: MIT
"""Dataset commands: data check, data synth."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dinowm.cli.base import HELP, Group, console, echo_json, main, say
from dinowm.errors import DataError


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
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "franka", "point_maze", "wall"]),
)
@click.option("--frameskip", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--num-hist", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--num-pred", default=1, show_default=True, type=click.IntRange(min=1, max=1))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_check(
    path: Path, layout: str, frameskip: int, num_hist: int, num_pred: int, as_json: bool
) -> None:
    """Summarise a dataset without training: episodes, lengths, dims, NaNs, value ranges.

    Exits 2 when it finds a problem that would stop training.

    Example: dinowm data check /data/franka_cube_stack_ds --frameskip 5 --num-hist 3
    """
    from dinowm.cli import dataviews
    from dinowm.trials import dataset_summary

    summary = dataset_summary(path, layout, frameskip, num_hist, num_pred)
    if summary.get("episodes") is None and summary.get("problems"):
        raise DataError(summary["problems"][0])
    if as_json:
        echo_json(summary)
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
    from dinowm.trials import write_synthetic

    info = write_synthetic(path, episodes=episodes, length=length, image_size=image_size, seed=seed)
    say(
        f"wrote {info['episodes']} episodes ({min(info['lengths'])}-"
        f"{max(info['lengths'])} frames, {image_size} px) to {path}"
    )

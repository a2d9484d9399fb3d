# SPDX-License-Identifier: MIT
"""`dinowm doctor`: what can break a run on this machine, checked before one starts."""

from __future__ import annotations

import click

from dinowm.cli.base import HELP, State, console, echo_json, main


@main.command(context_settings=HELP)
@click.option("--preset", "-p", default=None, help="Preset to check (default: the project's).")
@click.option(
    "--weights-sha256",
    metavar="HEX",
    default=None,
    help="The sha256 you trust for dinov2_vits14_pretrain.pth (default: "
    "$DINOWM_WEIGHTS_SHA256); without it the hash is shown, not compared.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_obj
def doctor(state: State, preset: str | None, weights_sha256: str | None, as_json: bool) -> None:
    """Check this machine and project for what can break a run: torch shadowed by the user
    site, CUDA build against the driver, NVML, GPU temperature, /dev/shm, disk, DINOv2
    weights, wandb, dinowm.toml and the dataset. Exits 1 when a check fails (warnings do not).

    \b
    Examples:
      dinowm doctor
      dinowm doctor --preset franka_f5_h3 --json
    """
    from dinowm.cli import views
    from dinowm.doctor import Machine, diagnose, failed

    checks = diagnose(state.config_arg, preset, Machine(weights_sha256=weights_sha256))
    if as_json:
        echo_json({"checks": [c.to_dict() for c in checks], "failed": len(failed(checks))})
    else:
        console.print(views.doctor_table(checks))
    if failed(checks):
        raise click.exceptions.Exit(1)

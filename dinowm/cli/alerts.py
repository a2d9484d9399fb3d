# SPDX-License-Identifier: MIT
"""`dinowm alerts test`: a test message to every [alerts] target, and which are active."""

from __future__ import annotations

import click

from dinowm.cli.base import HELP, State, console, echo_json, main
from dinowm.cli.views import alert_rows, alerts_table
from dinowm.errors import ConfigError


@main.group(context_settings=HELP)
def alerts() -> None:
    """Alerts of [alerts] in dinowm.toml: desktop, dinowm-tui, apprise URLs.

    Example: dinowm alerts test
    """


@alerts.command("test", context_settings=HELP)
@click.option(
    "--event",
    default="completed",
    show_default=True,
    help="The event whose alert to send (stall, oom, crash, failed, completed, "
    "thermal, queue_empty).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the targets' results as JSON.")
@click.pass_obj
def test_cmd(state: State, event: str, as_json: bool) -> None:
    """Send a test alert to every target and print target → ok or failed (URLs redacted).

    Example: dinowm alerts test --event stall
    """
    from dinowm.alerts import EVENTS, for_project, send_test, targets

    settings = for_project(state.project)
    if settings is None:
        raise ConfigError(
            f"No [alerts] table in {state.project.config_path}: nothing alerts; "
            f"add one (dinowm init writes an example) with urls = [...]."
        )
    if event not in EVENTS:
        raise ConfigError(f"--event {event!r} is not an event; choose one of {', '.join(EVENTS)}.")
    results = send_test(settings, event)
    rows = alert_rows(settings, targets(settings), results)
    if as_json:
        echo_json({"event": event, "listed": event in settings.events, "targets": rows})
    else:
        console.print(alerts_table(rows, event, event in settings.events))
    if not results or not all(r.ok for r in results):
        raise click.exceptions.Exit(1)

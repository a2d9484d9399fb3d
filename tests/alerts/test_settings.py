# SPDX-License-Identifier: MIT
"""[alerts] of dinowm.toml: checked in one line naming the key; URLs never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from dinowm.alerts.deliver import targets
from dinowm.alerts.message import compose
from dinowm.alerts.settings import (DEFAULT_EVENTS, KEYS, AlertSettings, for_project, redact,
                                    resolve)
from dinowm.alerts.watch import Watch
from dinowm.config import TEMPLATE, load_project, read_toml
from dinowm.errors import ConfigError
from tests.support.alerts import set_alerts


def _load(project_dir: Path, body: str | None) -> AlertSettings | None:
    set_alerts(project_dir / "dinowm.toml", body)
    return for_project(load_project(project_dir / "dinowm.toml"))


def test_the_shipped_table_lists_every_key_at_its_default(project_dir: Path) -> None:
    table = read_toml(TEMPLATE)["alerts"]
    assert tuple(table) == KEYS
    shipped = for_project(load_project(project_dir / "dinowm.toml"))
    assert shipped == AlertSettings() and shipped.events == DEFAULT_EVENTS
    assert _load(project_dir, None) is None  # no table: no alerts


@pytest.mark.parametrize(("body", "names"), [
    ('events = ["stall", "stal"]', ["alerts.events", "'stal'", "Did you mean 'stall'?"]),
    ('urls = ["ntfy:/my-host.example/SECRET-TOKEN"]', ["alerts.urls[0]", "scheme://", "env:VARIABLE"]),
    ('urls = ["json://ok/x", "SECRET-TOKEN"]', ["alerts.urls[1]"]),
    ('urls = ["env:bad name"]', ["alerts.urls[0]"]),
    ("timeout_s = 0", ["alerts.timeout_s=0", "above 0"]),
    ('desktop = "yes"', ["alerts.desktop='yes'", "true or false"]),
    ("url = []", ["Unknown key 'url' in [alerts]", "Did you mean 'urls'?"]),
])
def test_bad_values_are_one_line_naming_the_key(project_dir: Path, body: str,
                                                names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        _load(project_dir, body)
    message = str(err.value)
    assert "\n" not in message and str(project_dir / "dinowm.toml") in message
    assert all(n in message for n in names), message
    assert "SECRET-TOKEN" not in message and "my-host" not in message


def test_the_config_keeps_the_table_and_where_alerts_start_it_is_checked(
        project_dir: Path) -> None:
    from tui.app import build_app

    set_alerts(project_dir / "dinowm.toml", 'events = ["completd"]')
    project = load_project(project_dir / "dinowm.toml")  # the trainer's read: no alerts code
    assert project.alerts == {"events": ["completd"]}
    with pytest.raises(ConfigError, match="alerts.events"):
        build_app(project=project)  # dinowm-tui refuses it at its start, as before


def test_the_cli_refuses_a_bad_event_in_one_line(project_dir: Path, cli) -> None:
    set_alerts(project_dir / "dinowm.toml", 'events = ["completd"]')
    out = cli("runs", cwd=project_dir)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "alerts.events" in out.stderr


def test_urls_are_shown_by_scheme_and_env_references_by_name() -> None:
    assert redact("ntfy://ntfy.sh/SECRET") == "ntfy://…"
    assert redact("TGRAM://bot:SECRET@x") == "tgram://…" and redact("SECRET") == "…"
    assert resolve("env:DINOWM_T", {"DINOWM_T": "slack://SECRET/x"}) == (
        "env:DINOWM_T (slack://…)", "slack://SECRET/x", "")
    label, url, why = resolve("env:DINOWM_T", {})
    assert (label, url) == ("env:DINOWM_T", None) and "not set" in why
    settings = AlertSettings(urls=("json://h/SECRET", "env:DINOWM_T"), desktop=True)
    shown = targets(settings, {"PATH": "/nonexistent"})
    assert [t.label for t in shown] == ["json://…", "env:DINOWM_T", "desktop (notify-send)"]
    assert "DBUS_SESSION_BUS_ADDRESS" in shown[2].inactive
    bus = targets(settings, {"PATH": "/nonexistent", "DBUS_SESSION_BUS_ADDRESS": "unix:x"})
    assert "notify-send" in bus[2].inactive


def test_the_watch_alerts_each_new_event_once_after_its_baseline() -> None:
    watch = Watch(AlertSettings(events=("stall", "completed", "thermal")))
    run = {"id": "r1", "name": "demo-1", "status": "running", "epoch": 1, "epochs_target": 2}
    stall = {"id": 5, "run_id": "r1", "kind": "stall", "summary": "stall: no progress"}
    assert watch.observe({"r1": run}, [stall], 5) == []  # what was there before: no news
    new = {**stall, "id": 6, "summary": "stall: again"}
    cool = {"id": 7, "run_id": "r1", "kind": "thermal", "summary": "GPU at 70 °C: resuming",
            "details_json": '{"action": "resume"}'}
    hot = {**cool, "id": 8, "summary": "GPU at 90 °C", "details_json": '{"action": "pause"}'}
    alerts = watch.observe({"r1": {**run, "status": "completed", "epoch": 2}},
                           [stall, new, cool, hot], 8)
    assert [a.body for a in alerts] == [
        "demo-1 (r1): stalled — stall: again", "demo-1 (r1): paused, GPU too hot — GPU at 90 °C",
        "demo-1 (r1): completed — epoch 2/2"]
    assert watch.observe({"r1": {**run, "status": "completed"}}, [new, hot], 8) == []
    assert compose("queue_empty", None, "3 runs done").body == "dinowm: queue empty — 3 runs done"


def test_the_watch_alerts_once_when_the_queue_runs_dry() -> None:
    watch = Watch(AlertSettings(events=("queue_empty",)))
    assert watch.observe({}, [], 0, {"queued": 2, "running": 1}) == []  # the baseline
    assert watch.observe({}, [], 0, {"queued": 1, "running": 1, "completed": 1}) == []
    (alert,) = watch.observe({}, [], 0, {"completed": 2, "failed": 1})
    assert alert.body == "dinowm: queue empty — the queue ran dry (2 completed, 1 failed)"
    assert watch.observe({}, [], 0, {"completed": 2, "failed": 1}) == []  # said once
    quiet = Watch(AlertSettings(events=("completed",)))
    quiet.observe({}, [], 0, {"running": 1})
    assert quiet.observe({}, [], 0, {"completed": 1}) == []  # not a configured event

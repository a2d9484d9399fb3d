# SPDX-License-Identifier: MIT
"""The `[alerts]` table of dinowm.toml: which events go where, checked; URLs shown redacted."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dinowm.errors import ConfigError

if TYPE_CHECKING:
    from dinowm.config import Project

EVENTS = ("stall", "oom", "crash", "failed", "completed", "thermal", "queue_empty")
DEFAULT_EVENTS = ("stall", "oom", "crash", "failed", "completed")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://\S+$")
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class AlertSettings:
    """What `[alerts]` asks for; each field is one of its keys."""

    events: tuple[str, ...] = DEFAULT_EVENTS  # which events alert at all
    urls: tuple[str, ...] = ()  # apprise URLs, or env:VARIABLE holding one (kept out of files)
    desktop: bool = True  # notify-send where a session bus exists
    tui: bool = True  # a bell and a notification in dinowm-tui
    timeout_s: float = 10.0  # one alert's delivery budget per target


KEYS = ("events", "urls", "desktop", "tui", "timeout_s")


def for_project(project: Project) -> AlertSettings | None:
    """The project's [alerts] table checked (a ConfigError names the key); None without one."""
    return None if project.alerts is None else parse(project.alerts, str(project.config_path))


def parse(table: dict[str, Any], where: str) -> AlertSettings:
    """[alerts] of dinowm.toml → AlertSettings; each problem is one line naming the key."""
    for name in table:
        if name not in KEYS:
            raise ConfigError(
                f"Unknown key '{name}' in [alerts] of {where};{_hint(name, KEYS)} "
                f"the keys are {', '.join(KEYS)}."
            )
    values: dict[str, Any] = {}
    if "events" in table:
        values["events"] = _events(table["events"], where)
    if "urls" in table:
        values["urls"] = _urls(table["urls"], where)
    for name in ("desktop", "tui"):
        if name in table:
            if not isinstance(table[name], bool):
                raise ConfigError(
                    f"alerts.{name}={table[name]!r} in {where} must be true or false."
                )
            values[name] = table[name]
    if "timeout_s" in table:
        value = table["timeout_s"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
            raise ConfigError(
                f"alerts.timeout_s={value!r} in {where} must be a number of "
                f"seconds above 0 and at most 300, e.g. 10."
            )
        values["timeout_s"] = float(value)
    return AlertSettings(**values)


def _hint(name: str, choices: tuple[str, ...]) -> str:
    """ " Did you mean 'x'?" for the closest of choices, or nothing."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _events(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"alerts.events in {where} must be a list of event names such as "
            f'["stall", "completed"], got {value!r}.'
        )
    for name in value:
        if name not in EVENTS:
            raise ConfigError(
                f"alerts.events has unknown event {name!r} in {where};"
                f"{_hint(name, EVENTS)} "
                f"the events are {', '.join(EVENTS)}."
            )
    return tuple(dict.fromkeys(value))


def _urls(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(
            f"alerts.urls in {where} must be a list of apprise URLs, "
            f'e.g. ["ntfy://ntfy.sh/TOPIC", "env:DINOWM_ALERT_URL"].'
        )
    for i, url in enumerate(value):
        if not isinstance(url, str) or not (_SCHEME.match(url.strip()) or _ENV.match(url)):
            shown = "a value not shown here" if isinstance(url, str) else type(url).__name__
            raise ConfigError(
                f"alerts.urls[{i}] in {where} is not an apprise URL (got "
                f"{shown}: it may hold a token); write scheme://… such as "
                f'"ntfy://ntfy.sh/TOPIC", or env:VARIABLE to read it from the '
                f"environment."
            )
    return tuple(url.strip() for url in value)


def redact(url: str) -> str:
    """A URL as it may be shown anywhere: its scheme only (`ntfy://…`); env: references whole."""
    if _ENV.match(url):
        return url
    match = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", url)
    return f"{match.group(1).lower()}://…" if match else "…"


def resolve(entry: str, env: dict[str, str] | None = None) -> tuple[str, str | None, str]:
    """(label, URL or None, why not): an env: reference read from the environment now."""
    match = _ENV.match(entry)
    if match is None:
        return redact(entry), entry, ""
    name = match.group(1)
    url = (os.environ if env is None else env).get(name, "").strip()
    if not url:
        return entry, None, f"{name} is not set in the environment"
    label = f"{entry} ({redact(url)})"
    if not _SCHEME.match(url):
        return label, None, f"{name} does not hold an apprise URL (scheme://…)"
    return label, url, ""

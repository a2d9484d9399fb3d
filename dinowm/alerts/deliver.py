# SPDX-License-Identifier: MIT
"""Delivery of one alert to every active target, each within the timeout; the body of the
detached process the supervisor starts per alert (`python -m dinowm.alerts`, JSON on stdin)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from dinowm.alerts.message import Alert
from dinowm.alerts.settings import AlertSettings, resolve


@dataclass(frozen=True)
class Target:
    """One place alerts go: an apprise URL (shown redacted) or the desktop."""

    label: str
    kind: str  # apprise | desktop
    url: str | None = None
    inactive: str = ""  # why it is skipped, empty when active


@dataclass(frozen=True)
class Result:
    """How one delivery went; the reason is built from fixed words and numbers only."""

    label: str
    ok: bool
    reason: str = ""


def targets(settings: AlertSettings, env: dict[str, str] | None = None) -> list[Target]:
    """Every configured target, active or with the reason it is skipped."""
    env = dict(os.environ) if env is None else env
    out = []
    for entry in settings.urls:
        label, url, why = resolve(entry, env)
        out.append(Target(label, "apprise", url, why))
    if settings.desktop:
        why = (
            "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
            if not env.get("DBUS_SESSION_BUS_ADDRESS")
            else "notify-send is not installed (apt install libnotify-bin)"
            if not shutil.which("notify-send", path=env.get("PATH"))
            else ""
        )
        out.append(Target("desktop (notify-send)", "desktop", None, why))
    return out


def deliver(
    settings: AlertSettings, alert: Alert, env: dict[str, str] | None = None
) -> list[Result]:
    """Send to every active target in parallel; a target that has not answered within
    timeout_s is a failure ("no answer"), and nothing waits longer."""
    active = [t for t in targets(settings, env) if not t.inactive]
    results: dict[int, Result] = {}
    threads = []
    for i, target in enumerate(active):

        def run(i: int = i, target: Target = target) -> None:
            results[i] = _send(target, alert, settings.timeout_s)

        thread = threading.Thread(target=run, name=f"alert-{i}", daemon=True)
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + settings.timeout_s + 1.0
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return [
        results.get(i) or Result(t.label, False, f"no answer within {settings.timeout_s:g} s")
        for i, t in enumerate(active)
    ]


def _send(target: Target, alert: Alert, timeout_s: float) -> Result:
    try:
        reason = (
            _desktop(alert, timeout_s)
            if target.kind == "desktop"
            else _apprise(target.url or "", alert, timeout_s)
        )
    except Exception as exc:  # a failing target must never stop the others; named by type
        reason = f"{type(exc).__name__} in the sender"
    return Result(target.label, not reason, reason)


def _desktop(alert: Alert, timeout_s: float) -> str:
    urgency = "normal" if alert.event in ("completed", "queue_empty") else "critical"
    try:
        done = subprocess.run(
            ["notify-send", "--app-name=dinowm", f"--urgency={urgency}", alert.title, alert.body],
            capture_output=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return f"notify-send cannot start ({exc.strerror})"
    return "" if done.returncode == 0 else f"notify-send exited with code {done.returncode}"


def _apprise(url: str, alert: Alert, timeout_s: float) -> str:
    """'' when delivered, else why not. apprise's own log lines name hosts and paths: they go
    nowhere, and the reason is read from them only as a status code or a known word."""
    import apprise

    quiet = logging.getLogger("apprise")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    service = apprise.Apprise()
    if not service.add(url):
        return "not an apprise URL (unknown scheme or malformed; see apprise's list of services)"
    result = service.notify(body=alert.body, title=alert.title, timeout=timeout_s)
    status = getattr(getattr(result, "status", None), "name", "SUCCESS" if result else "FAILURE")
    if status == "SUCCESS":
        return ""
    if status == "TIMEOUT":
        return f"no answer within {timeout_s:g} s"
    logs = " ".join(
        str(getattr(entry, "message", ""))
        for res in getattr(result, "results", [])
        for attempt in getattr(res, "_attempts", [])
        for entry in attempt.logs
    )
    code = re.search(r"error=(\d{3})\b", logs)
    if code:
        return f"the service answered HTTP {code.group(1)}"
    if "connection error" in logs.lower():  # refused at once, or apprise's own read timeout
        waited = float(getattr(result, "elapsed", 0) or 0)
        return (
            f"no answer within {waited:.0f} s" if waited >= 1 else "cannot connect to the service"
        )
    return "the service did not accept it"


def spawn_payload(settings: AlertSettings, alert: Alert) -> bytes:
    """What the detached delivery process reads on stdin (never argv: ps shows argv)."""
    return json.dumps(
        {
            "settings": {
                "events": list(settings.events),
                "urls": list(settings.urls),
                "desktop": settings.desktop,
                "tui": settings.tui,
                "timeout_s": settings.timeout_s,
            },
            "alert": alert.__dict__,
        }
    ).encode()


def main() -> int:
    """Deliver the alert on stdin; print one redacted line per failed target; exit by the
    deadline whatever a hung service does."""
    doc = json.loads(sys.stdin.read())
    sent = doc["settings"]
    settings = AlertSettings(
        events=tuple(sent["events"]),
        urls=tuple(sent["urls"]),
        desktop=sent["desktop"],
        tui=sent["tui"],
        timeout_s=sent["timeout_s"],
    )
    alert = Alert(**doc["alert"])
    signal.alarm(int(settings.timeout_s) + 5)  # the last word on a hang anywhere
    for result in deliver(settings, alert):
        if not result.ok:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{stamp} alert '{alert.event}' to {result.label} failed: {result.reason}",
                file=sys.stderr,
                flush=True,
            )
    os._exit(0)  # threads of a service that never answered are not waited for

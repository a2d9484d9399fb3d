# SPDX-License-Identifier: MIT
"""The wandb mirror's mode: online needs wandb installed, a login and the network."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlparse

from dinowm.doctor.check import OK, WARN, Check
from dinowm.schema import RunConfig

WANDB_HOST = "api.wandb.ai"
Reach = Callable[[str, int], str | None]


def reach(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None when a TCP connection to host:port opens, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return str(exc) or type(exc).__name__
    return None


def _logged_in(env: Mapping[str, str], host: str) -> bool:
    """An API key in the environment, or wandb's entry in the netrc file (`wandb login`)."""
    if env.get("WANDB_API_KEY"):
        return True
    netrc = Path(env.get("NETRC") or Path(env.get("HOME") or "~").expanduser() / ".netrc")
    try:
        return host in netrc.read_text()
    except OSError:
        return False


def check_wandb(
    cfg: RunConfig,
    preset: str,
    env: Mapping[str, str],
    connect: Reach = reach,
    installed: bool | None = None,
) -> Check:
    """8. wandb.mode of the preset and WANDB_MODE; online without wandb, login or network warns."""
    name = "wandb"
    mode, forced = cfg.wandb.mode, env.get("WANDB_MODE")
    found = f"wandb.mode={mode} (preset {preset})"
    if forced and forced != mode:
        return Check(
            name,
            WARN,
            f"{found} but WANDB_MODE={forced} in the environment: wandb may follow either",
            f"unset WANDB_MODE, or set wandb.mode={forced}",
        )
    if mode != "online":
        what = "no mirror" if mode == "disabled" else "runs are kept locally: wandb sync later"
        return Check(name, OK, f"{found}: {what}")
    if installed is None:
        installed = importlib.util.find_spec("wandb") is not None
    if not installed:
        return Check(
            name,
            WARN,
            f"{found} but wandb is not installed: the mirror stays off",
            "pip install 'dinowm[wandb]', or wandb.mode=disabled",
        )
    host = urlparse(env.get("WANDB_BASE_URL") or f"https://{WANDB_HOST}").hostname or WANDB_HOST
    if not _logged_in(env, host):
        return Check(
            name,
            WARN,
            f"{found} but no login for {host} (no WANDB_API_KEY, no netrc entry)",
            "wandb login, or wandb.mode=offline",
        )
    why = connect(host, 443)
    if why is not None:
        return Check(
            name,
            WARN,
            f"{found} but {host}:443 cannot be reached ({why})",
            "wandb.mode=offline (wandb sync later), or check the network and proxy",
        )
    return Check(name, OK, f"{found}: logged in, {host} reachable")

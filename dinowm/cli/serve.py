# SPDX-License-Identifier: MIT
"""`dinowm serve`: dinowm-tui in a browser through textual-serve, on this machine only by
default."""

from __future__ import annotations

import errno
import ipaddress
import shlex
import socket
import sys
from pathlib import Path

import click

from dinowm.cli.base import HELP, State, load_checked, main
from dinowm.errors import ConfigError, DinowmError
from dinowm.formats import literal

SSH = "ssh -L {port}:localhost:{port} user@workstation"


def addresses(host: str, port: int) -> list[tuple]:
    """getaddrinfo of host for a listening TCP socket: (family, type, proto, name, sockaddr)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"Cannot resolve --host {host!r} ({exc.strerror}); give an address "
            f"of this machine, e.g. the default 127.0.0.1."
        ) from exc
    return list(dict.fromkeys(found))  # one socket per distinct address


def is_loopback(found: list[tuple]) -> bool:
    """True when every address host resolves to is this machine's loopback."""
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in found)


def remote_refused(host: str, port: int) -> ConfigError:
    """The one line for a --host other machines can reach, given without --allow-remote."""
    shown = port or 8000
    return ConfigError(
        f"--host {host} would serve dinowm to other machines, and dinowm serve has no login: "
        f"anyone who reaches the port could start and stop your runs. Keep the default "
        f"--host 127.0.0.1 and forward the port from your own machine "
        f"({SSH.format(port=shown)}, then open http://localhost:{shown}), or pass "
        f"--allow-remote on a network you trust."
    )


def listen(found: list[tuple], host: str, port: int) -> list[socket.socket]:
    """A listening socket for each address found (--port 0: the same free port on all)."""
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in found:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # --port 0: the first socket picks a free port, the others take the same one
            sock.bind(
                (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
                if len(sockets) > 1
                else sockaddr
            )
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise listen_error(host, port, exc) from exc
    return sockets


def listen_error(host: str, port: int, exc: OSError) -> DinowmError:
    """The one line for a socket that cannot listen: port taken, address not ours, other."""
    if exc.errno == errno.EADDRINUSE:
        return DinowmError(
            f"Port {port} on {host} is in use (another dinowm serve or another "
            f"program); serve on a free one with --port, e.g. "
            f"dinowm serve --port {port + 1}."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"Cannot listen on --host {host}: it is not an address of this "
            f"machine; use one of its own addresses, or the default 127.0.0.1."
        )
    return DinowmError(
        f"Cannot listen on {host}:{port} ({exc.strerror}); try another "
        f"--port (from 1024 up without root) or --host."
    )


def url_of(sock: socket.socket, host: str) -> str:
    """The address a browser opens for this socket (this machine's name for 0.0.0.0 / ::)."""
    address, port = sock.getsockname()[:2]
    ip = ipaddress.ip_address(address)
    name = socket.gethostname() if ip.is_unspecified else host
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}"


def app_command(config_path: Path) -> str:
    """The shell command textual-serve runs for each browser tab: this Python's dinowm-tui."""
    return "exec " + shlex.join([sys.executable, "-m", "tui.app", str(config_path)])


@main.command(context_settings=HELP)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Only loopback without --allow-remote.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port; the URL printed names it).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach. There is no login: anyone who "
    "reaches the port controls your runs.",
)
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.pass_obj
def serve(state: State, host: str, port: int, allow_remote: bool, path: Path | None) -> None:
    """Serve dinowm-tui to a web browser: every tab runs its own app on runs.db.

    PATH is a dinowm.toml or its folder (default: found like every dinowm command, or
    --config). Runs started from a tab run detached: Ctrl-C stops serving and the apps,
    never a run. There is no login, so it listens on this machine only; from another
    machine, forward the port over SSH and open http://localhost:8000 there.

    \b
    Examples:
      dinowm serve                      then open http://127.0.0.1:8000
      dinowm serve --port 8080 ~/runs   another port, another project
      # on your laptop: forward the port, then open http://localhost:8000
      ssh -L 8000:localhost:8000 user@workstation
    """
    project = load_checked(path) if path is not None else state.project
    found = addresses(host, port)
    remote = not is_loopback(found)
    if remote and not allow_remote:
        raise remote_refused(host, port)
    sockets = listen(found, host, port)
    url = url_of(sockets[0], host)
    if remote:
        click.secho(
            f"WARNING: serving to the network with no login: anyone who can reach "
            f"{url} controls your runs (start, stop, resume, notes). Prefer "
            f"{SSH.format(port=sockets[0].getsockname()[1])}.",
            err=True,
            fg="red",
            bold=True,
        )
    click.echo(
        f"dinowm serve: open {url} in a browser ({literal(project.config_path)}); "
        f"Ctrl-C stops serving, runs go on."
    )
    from dinowm.cli.webserver import serve_app  # aiohttp loads for this command only

    serve_app(app_command(project.config_path), sockets, local_only=not remote)

# SPDX-License-Identifier: MIT
"""textual-serve's server for `dinowm serve`: sockets bound beforehand, same-site requests only,
and on Ctrl-C (or SIGTERM) every app process it started ends with it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import click
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from dinowm.supervise.procinfo import descendants

SHUTDOWN_S = 5.0  # how long the apps get to quit when serving ends, before they are killed


def refusal(host_header: str, origin: str | None, local_only: bool) -> str | None:
    """Why a request is refused, or None: a page of another site (its Origin differs, e.g. a
    web page driving the app's websocket), or a name other than this machine's own when
    serving locally (DNS rebinding)."""
    if origin is not None and urlsplit(origin).netloc != host_header:
        return f"dinowm serve refuses requests from other sites (Origin {origin})."
    name = urlsplit(f"//{host_header}").hostname or ""
    if local_only and not is_local_name(name):
        return f"dinowm serve answers to localhost only, not to {name!r}."
    return None


def is_local_name(name: str) -> bool:
    """localhost, *.localhost or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ProjectServer(Server):
    """Serves one command per browser tab on the given sockets."""

    def __init__(self, command: str, sockets: list[socket.socket], local_only: bool) -> None:
        super().__init__(command, title="dinowm")
        self.sockets = sockets
        self.local_only = local_only
        self.tabs: set[web.WebSocketResponse] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()

        @web.middleware
        async def same_site(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            reason = refusal(request.host, request.headers.get("Origin"), self.local_only)
            if reason is not None:
                raise web.HTTPForbidden(text=reason)
            return await handler(request)

        app.middlewares.append(same_site)
        app.on_cleanup.append(end_apps)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """The command printed the URL already; textual-serve's banner stays out."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every tab: its handler then asks its app to quit and waits for it."""
        await asyncio.gather(*(tab.close() for tab in list(self.tabs)))

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """The page, with the websocket's URL on the host the browser asked (ssh -L, a name)."""
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def _process_messages(
        self, websocket: web.WebSocketResponse, app_service: AppService
    ) -> None:
        self.tabs.add(websocket)
        click.echo(f"a browser tab connected ({len(self.tabs)} open)")
        try:
            await super()._process_messages(websocket, app_service)
        finally:
            self.tabs.discard(websocket)
            click.echo(f"a browser tab closed ({len(self.tabs)} open)")

    def serve(self, debug: bool = False) -> None:
        """Serve until SIGINT or SIGTERM, then end the apps."""
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_exit)
        web.run_app(
            self._make_app(),
            sock=self.sockets,
            handle_signals=False,
            loop=loop,
            print=None,
            access_log=None,
            shutdown_timeout=SHUTDOWN_S,
        )


def app_processes() -> list[int]:
    """The app processes still there (our children; zombies too, until the loop reaps them).

    Only children: a run started from a tab leads a session of its own and is never touched."""
    me = os.getpid()
    return [row["pid"] for row in descendants(me) if row["ppid"] == me]


async def end_apps(app: web.Application) -> None:
    """After the tabs closed: wait for the apps to be reaped, SIGKILL those still there."""
    deadline = time.monotonic() + SHUTDOWN_S
    while (left := app_processes()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.05)  # the loop's child watcher reaps them before it closes


def serve_app(command: str, sockets: list[socket.socket], local_only: bool) -> None:
    """Serve `command` (dinowm-tui) to browsers on sockets until Ctrl-C."""
    ProjectServer(command, sockets, local_only).serve()
    click.echo("dinowm serve: stopped; the runs go on.")

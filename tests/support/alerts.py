# SPDX-License-Identifier: MIT
"""A real HTTP receiver for apprise's json:// target on 127.0.0.1, and a port that accepts
connections and never answers; one per test module (the `receiver` fixture)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


class Receiver:
    """Keeps every JSON body posted to it, by the path's first part (a test's token)."""

    def __init__(self) -> None:
        received: dict[str, list[dict[str, Any]]] = {}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = self.path.strip("/").split("/")[0].split("?")[0]
                with lock:
                    received.setdefault(token, []).append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received, self.lock = received, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.hang = socket.socket()
        self.hang.bind(("127.0.0.1", 0))
        self.hang.listen(16)
        self.held: list[socket.socket] = []
        self.holder = threading.Thread(target=self._hold, daemon=True)
        self.holder.start()

    def _hold(self) -> None:
        """Accept and never answer."""
        while True:
            try:
                conn, _ = self.hang.accept()
            except OSError:
                return
            self.held.append(conn)

    def url(self, token: str) -> str:
        return f"json://127.0.0.1:{self.server.server_port}/{token}/"

    def hanging_url(self, token: str) -> str:
        return f"json://127.0.0.1:{self.hang.getsockname()[1]}/{token}/"

    def messages(self, token: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received.get(token, []))

    def wait_for(self, token: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The token's messages once there are `count` of them (fails after timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages(token)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages(token))} of {count} alerts arrived for "
                             f"{token}: {self.messages(token)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:  # wakes the thread blocked in accept(), which a close() alone does not
            self.hang.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.hang.close()
        self.holder.join(timeout=5)
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """One receiver for the tests of a module."""
    rec = Receiver()
    yield rec
    rec.close()


def set_alerts(config: Path, body: str | None) -> None:
    """Replace the [alerts] table of a dinowm.toml (the shipped one's is last) with body's
    lines; None removes it."""
    text = config.read_text()
    head = text[:text.index("\n[alerts]\n")] if "\n[alerts]\n" in text else text
    config.write_text(head + ("" if body is None else f"\n[alerts]\n{body.strip()}\n"))


def alerts_body(urls: list[str], events: list[str] | None = None, timeout_s: float = 5,
                desktop: bool = False) -> str:
    """The lines of an [alerts] table."""
    lines = [f"urls = {json.dumps(urls)}", f"desktop = {str(desktop).lower()}",
             f"timeout_s = {timeout_s}"]
    if events is not None:
        lines.append(f"events = {json.dumps(events)}")
    return "\n".join(lines)

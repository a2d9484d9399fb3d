# SPDX-License-Identifier: MIT
"""Optional wandb mirror fed by the supervisor; all wandb work runs in one daemon thread.

The trainer never touches wandb. The supervisor calls `log()` (never blocks, drops the oldest
entry when the queue is full) and reads `status()`; a wandb call that hangs shows up as state
"hung" and is abandoned at `finish()`, so it can never stall the supervisor or training.
"""

from __future__ import annotations

import importlib
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MODES = ("disabled", "offline", "online")
NOT_INSTALLED = "unavailable: wandb is not installed (pip install wandb)"

# Keep wandb out of the supervisor's stdout/stderr, git state and host sampling (telemetry.py
# samples the GPU already). Keys a wandb version does not know are left out.
_QUIET_SETTINGS: dict[str, Any] = {
    "console": "off",
    "silent": True,
    "disable_git": True,
    "disable_code": True,
    "save_code": False,
    "x_disable_stats": True,
}


def new_wandb_id() -> str:
    """A fresh wandb run id: 8 lowercase letters and digits, like wandb's own."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _settings(wandb: Any) -> Any:
    """wandb.Settings with as many of _QUIET_SETTINGS as this wandb accepts, or None."""
    settings_cls = getattr(wandb, "Settings", None)
    if settings_cls is None:
        return None
    known = getattr(settings_cls, "model_fields", None)
    wanted = {k: v for k, v in _QUIET_SETTINGS.items() if known is None or k in known}
    for kwargs in (wanted, {"console": "off"}):
        try:
            return settings_cls(**kwargs)
        except Exception:  # an older wandb rejecting a key: try the minimal set, then none
            continue
    return None


def _run_url(run: Any) -> str | None:
    """The run's page: `run.url` on current wandb, `run.get_url()` on older ones."""
    url = getattr(run, "url", None)
    if url is None and callable(getattr(run, "get_url", None)):
        url = run.get_url()
    return None if url is None else str(url)


class Mirror:
    """Mirror of one run's metrics to wandb; mode "disabled", "offline" or "online"."""

    def __init__(
        self,
        mode: str,
        project: str,
        entity: str,
        run_name: str,
        run_id: str,
        wandb_id: str | None,
        config: dict,
        run_dir: Path,
        timeout_s: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"wandb mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.timeout_s = timeout_s
        self.url: str | None = None
        self._init_kwargs: dict[str, Any] = {
            "project": project,
            "entity": entity or None,
            "name": run_name,
            "id": wandb_id or new_wandb_id(),
            "resume": "allow",
            "dir": str(run_dir),
            "config": {**config, "dinowm_run_id": run_id},
            "mode": mode,
        }
        self.wandb_id: str | None = wandb_id if mode == "disabled" else self._init_kwargs["id"]
        self._queue: deque[tuple[dict, int]] = deque()
        self._queue_size = max(1, queue_size)
        self._cond = threading.Condition()
        self._dropped = 0
        self._closing = False  # set by finish(): log() stops queueing, the worker wraps up
        self._stopped = False  # set by the worker when wandb is unusable: log() does nothing
        self._state = "disabled" if mode == "disabled" else "starting"
        self._error: str | None = None
        self._gave_up: str | None = None
        self._call_name: str | None = None
        self._call_started: float | None = None
        self._thread: threading.Thread | None = None
        if mode != "disabled":
            self._thread = threading.Thread(target=self._work, name="wandb-mirror", daemon=True)
            self._thread.start()

    def log(self, metrics: dict, step: int) -> None:
        """Queue metrics for wandb; never blocks, drops the oldest entry when the queue is full."""
        if self._thread is None:
            return
        with self._cond:
            if self._closing or self._stopped:
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append((dict(metrics), step))
            self._cond.notify()

    def finish(self, timeout_s: float | None = None) -> None:
        """Flush the queue and finish the wandb run, waiting at most timeout_s; then give up."""
        if self._thread is None or self._gave_up is not None:
            return
        timeout = self.timeout_s if timeout_s is None else timeout_s
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive() and self._gave_up is None:
            waiting_on = self._call_name or "the wandb worker"
            self._gave_up = (
                f"hung: gave up after {timeout:g} s waiting for {waiting_on}; "
                "its daemon thread is left behind"
            )

    def status(self) -> dict[str, Any]:
        """State (disabled/starting/ok/finished/hung/unavailable/failed), drops, ids, last error."""
        state = self._state
        started, name = self._call_started, self._call_name
        if self._gave_up is not None:
            state = self._gave_up
        elif started is not None and time.monotonic() - started > self.timeout_s:
            state = f"hung: {name} has not returned after {time.monotonic() - started:.0f} s"
        with self._cond:
            queued, dropped = len(self._queue), self._dropped
        return {
            "state": state,
            "dropped": dropped,
            "queued": queued,
            "wandb_id": self.wandb_id,
            "url": self.url,
            "error": self._error,
        }

    def _call(self, name: str, fn: Callable[[], T]) -> T:
        """Run one wandb call with its start time visible to status(), which detects hangs."""
        self._call_name, self._call_started = name, time.monotonic()
        try:
            return fn()
        finally:
            self._call_started = None

    def _fail(self, name: str, exc: BaseException) -> None:
        self._error = f"{name} raised {type(exc).__name__}: {exc}"
        self._state = f"failed: {self._error}"
        with self._cond:
            self._stopped = True
            self._queue.clear()

    def _work(self) -> None:
        """Worker thread: import wandb, init the run, log until finish(), finish the run."""
        try:
            wandb = self._call("import wandb", lambda: importlib.import_module("wandb"))
        except ImportError:
            self._error, self._state = NOT_INSTALLED, NOT_INSTALLED
            with self._cond:
                self._stopped = True
                self._queue.clear()
            return
        except BaseException as exc:  # wandb's own import failed: a status, not a crash
            self._fail("import wandb", exc)
            return
        try:
            kwargs = {**self._init_kwargs, "settings": _settings(wandb)}
            run = self._call("wandb.init", lambda: wandb.init(**kwargs))
            self.wandb_id = str(run.id)
            if self.mode != "offline":
                self.url = _run_url(run)
        except BaseException as exc:  # SystemExit included: it would end the thread silently
            self._fail("wandb.init", exc)
            return
        self._state = "ok"
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._stopped:
                    self._cond.wait()
                if self._stopped or not self._queue:
                    break
                metrics, step = self._queue.popleft()
            try:
                self._call("wandb.log", partial(run.log, metrics, step=step))
            except BaseException as exc:
                self._fail("wandb.log", exc)
        try:
            self._call("wandb.finish", run.finish)
            if not self._stopped:
                self._state = "finished"
        except BaseException as exc:
            if self._stopped:
                self._error = f"{self._error}; then wandb.finish raised {exc!r}"
            else:
                self._fail("wandb.finish", exc)

# SPDX-License-Identifier: MIT
"""Calls that may never return (NVML in a wedged driver, /proc of a stuck process), bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_with_timeout(fn: Callable[[], T], timeout: float, what: str = "NVML") -> T:
    """Run fn in a daemon thread; raise TimeoutError if it does not return in time.

    NVML can block forever inside a wedged driver, a read of /proc behind a stuck kernel call
    too; a daemon thread left behind is the price.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="bounded-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]

# SPDX-License-Identifier: MIT
"""Thermal guard: pause the trainer between steps while the GPU is too hot (pure state machine)."""

from __future__ import annotations

from dataclasses import dataclass

from dinowm.schema import ThermalConfig


@dataclass
class ThermalGuard:
    """Pause after `hold_s` above max_temp_c; resume below resume_temp_c."""

    cfg: ThermalConfig
    hot_since: float | None = None
    paused_since: float | None = None

    def update(self, temp_c: float | None, now: float) -> str | None:
        """'pause', 'resume' or None for a new temperature reading."""
        if not self.cfg.enabled or temp_c is None:
            return None
        if self.paused_since is not None:
            if temp_c < self.cfg.resume_temp_c:
                self.paused_since, self.hot_since = None, None
                return "resume"
            return None
        if temp_c > self.cfg.max_temp_c:
            self.hot_since = self.hot_since if self.hot_since is not None else now
            if now - self.hot_since >= self.cfg.hold_s:
                self.paused_since = now
                return "pause"
        else:
            self.hot_since = None
        return None

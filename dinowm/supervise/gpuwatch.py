# SPDX-License-Identifier: MIT
"""The supervisor's eye on the GPU: telemetry rows into runs.db, NVML going silent, heat."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dinowm import rundir
from dinowm.store import Store
from dinowm.supervise import telemetry
from dinowm.supervise.thermal import ThermalGuard


class GpuWatch:
    """Samples the run's GPUs in a thread; each supervisor tick records and acts on them."""

    def __init__(self, store: Store, run_id: str, run_dir: Path, interval_s: float):
        self.store, self.run_id, self.run_dir = store, run_id, Path(run_dir)
        self.tele = telemetry.TelemetryThread(
            telemetry.Sampler(telemetry.visible_gpus(os.environ, telemetry.nvml_uuids())),
            interval_s,
        )
        self.stale = False  # NVML stopped answering (a hung driver call)

    def start(self) -> None:
        """Start sampling; a machine without NVML is recorded once as an incident."""
        self.tele.start()
        if not self.tele.sampler.available:
            self.store.add_incident(
                self.run_id, "telemetry", f"GPU telemetry unavailable: {self.tele.sampler.reason}"
            )

    def stop(self) -> None:
        """Stop sampling, record the last rows, lift a thermal pause."""
        self.tele.stop()
        self.write_rows()
        self.clear_pause()

    @property
    def lost(self) -> dict | None:
        """NVML's word that a GPU is gone (GPU_IS_LOST), else None."""
        return self.tele.sampler.lost

    @property
    def available(self) -> bool:
        return self.tele.sampler.available

    def latest(self) -> list[dict]:
        """The newest sample of each GPU."""
        return self.tele.latest()

    def write_rows(self) -> None:
        """The samples since the last call, as telemetry rows (one executemany)."""
        rows = self.tele.drain()
        if rows:
            self.store.add_telemetry([{**r, "run_id": self.run_id} for r in rows])

    def watch(self, guard: ThermalGuard, attempt: int) -> None:
        """Record when NVML stops answering and when it answers again; training goes on.

        A hung NVML call blocks only the sampler thread. While it hangs the thermal guard has no
        reading: a thermal pause is lifted rather than left waiting for a temperature that will
        not come (the GPU's own slowdown and shutdown limits still protect it).
        """
        tele = self.tele
        stale = tele.stale()
        if stale == self.stale:
            return
        self.stale = stale
        if not stale:
            self.store.add_incident(
                self.run_id, "telemetry", "GPU telemetry answering again", attempt=attempt
            )
            return
        silent = time.monotonic() - (tele.last_sample_monotonic or tele.started_monotonic or 0)
        summary = (
            f"GPU telemetry stalled: NVML has not answered for {silent:.0f} s; "
            "training goes on without GPU readings"
        )
        if guard.paused_since is not None:
            guard.paused_since, guard.hot_since = None, None
            self.clear_pause()
            summary += "; thermal pause lifted (no temperature to wait for)"
        self.store.add_incident(
            self.run_id,
            "telemetry",
            summary,
            {"silent_s": round(silent, 1), "error": tele.error, "samples": tele.samples},
            attempt=attempt,
        )

    def heat(self, guard: ThermalGuard, now: float) -> str | None:
        """Pause the trainer between steps while the GPU is too hot (control.json), resume
        when it has cooled; each change is an incident with the throttle reasons. Returns the
        pause's summary when it paused now."""
        if self.stale:
            return None  # the newest rows are old: no decision on them
        latest = self.tele.latest()
        temps = [r["temp_c"] for r in latest if r.get("temp_c") is not None]
        action = guard.update(max(temps) if temps else None, now)
        if action is None:
            return None
        reasons = sorted({n for r in latest for n in telemetry.throttle_names(r.get("throttle"))})
        cfg = guard.cfg
        if action == "pause":
            reason = (
                f"GPU at {max(temps):.0f} °C > {cfg.max_temp_c:.0f} °C for "
                f"{cfg.hold_s:.0f} s; pausing until < {cfg.resume_temp_c:.0f} °C"
            )
            (self.run_dir / rundir.CONTROL).write_text(
                json.dumps({"pause": True, "reason": reason})
            )
        else:
            reason = f"GPU at {max(temps):.0f} °C: resuming"
            self.clear_pause()
        self.store.add_incident(
            self.run_id, "thermal", reason, {"temps": temps, "throttle": reasons, "action": action}
        )
        return reason if action == "pause" else None

    def clear_pause(self) -> None:
        """Remove the trainer's pause request."""
        (self.run_dir / rundir.CONTROL).unlink(missing_ok=True)

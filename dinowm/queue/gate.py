# SPDX-License-Identifier: MIT
"""Whether the next entry may start: its GPUs free (no dinowm run active on this machine, their
memory not held by another process) and cool (below its thermal.resume_temp_c).

Without NVML (a CPU machine, no driver) only "no dinowm run active" applies. NVML is opened
once per queue supervisor and every read is bounded, so a hung driver holds the queue with a
reason instead of hanging it.
"""

from __future__ import annotations

from typing import Any

from dinowm.backends import backend_of, reconcile
from dinowm.rundir import ACTIVE
from dinowm.schema import RunConfig
from dinowm.store import Store
from dinowm.supervise.bounded import call_with_timeout
from dinowm.supervise.telemetry import Sampler

# More memory than this in use on an idle GPU means another process holds it (a desktop's
# display server takes a few hundred MiB).
BUSY_MIB = 1024
READ_TIMEOUT_S = 10.0


class Gate:
    """The free-and-cool check of the queue supervisor; close() releases NVML."""

    def __init__(self) -> None:
        self._sampler: Sampler | None = None

    def sampler(self) -> Sampler:
        if self._sampler is None:
            self._sampler = Sampler()  # this process's visible GPUs, in CUDA order
        return self._sampler

    def why_not(self, store: Store, cfg: RunConfig) -> str | None:
        """None when an entry of cfg may start now, else why it waits (one line)."""
        reconcile(store)  # a run whose supervisor died is no longer active
        for run in store.runs_with_status(ACTIVE):
            if backend_of(run).occupies_here(run):
                return f"run {run['id']} ({run.get('name')}) is {run['status']} on this machine"
        sampler = self.sampler()
        if not sampler.available:
            return None
        try:
            rows: list[dict[str, Any]] = call_with_timeout(sampler.sample, READ_TIMEOUT_S)
        except TimeoutError:
            return f"NVML did not answer within {READ_TIMEOUT_S:.0f} s; waiting for the driver"
        wanted = rows[: cfg.dist.nproc_per_node]
        limit = cfg.thermal.resume_temp_c
        for row in wanted:
            if row["temp_c"] is not None and row["temp_c"] >= limit:
                return (
                    f"GPU {row['gpu']} is at {row['temp_c']:.0f} °C; waiting until it is "
                    f"below thermal.resume_temp_c={limit:g}"
                )
        for row in wanted:
            if row["mem_used_mib"] is not None and row["mem_used_mib"] > BUSY_MIB:
                return (
                    f"GPU {row['gpu']} has {row['mem_used_mib']:,.0f} MiB in use by another "
                    f"process; waiting until it is free (at most {BUSY_MIB} MiB in use)"
                )
        return None

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None

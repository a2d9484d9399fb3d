# SPDX-License-Identifier: MIT
"""GPU telemetry through NVML: per-field samples, a sampling thread and one-shot snapshots."""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dinowm.supervise.bounded import call_with_timeout
from dinowm.supervise.hardware import gpu_description

# NVML clocks-event reason bits (nvmlClocksEventReason*; the older name is ClocksThrottleReason).
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "app_clocks",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
    0x100: "display_clocks",
}
THERMAL_BITS = 0x20 | 0x40 | 0x8
FIELDS = (
    "temp_c",
    "power_w",
    "power_limit_w",
    "util_pct",
    "mem_used_mib",
    "mem_total_mib",
    "sm_clock_mhz",
    "fan_pct",
    "throttle",
)

# NVML ABI constants from nvml.h; a test checks them against the installed pynvml.
TEMPERATURE_GPU, CLOCK_SM = 0, 1
ERROR_DRIVER_NOT_LOADED, ERROR_LIBRARY_NOT_FOUND, ERROR_GPU_IS_LOST = 9, 12, 15
PERMANENT_ERRORS = frozenset({3, 4, 13})  # not supported, no permission, function not found
_MIB = 2**20
_ORDINAL = re.compile(r"[+-]?\d+")

Reader = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]


def throttle_names(mask: int | None) -> list[str]:
    """Short names of the reason bits set in mask; unknown bits as hex ('0x200')."""
    if not mask:
        return []
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_REASONS)
    return names + [hex(1 << b) for b in range(rest.bit_length()) if rest >> b & 1]


def visible_gpus(env: Mapping[str, str], nvml_uuids: Sequence[str]) -> list[int]:
    """NVML indices a CUDA process sees under env's CUDA_VISIBLE_DEVICES, in CUDA order."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return list(range(len(nvml_uuids)))
    chosen: list[int] = []
    for entry in value.split(","):
        index = _resolve(entry.strip(), nvml_uuids)
        if index is None:  # CUDA stops at the first entry it cannot use
            break
        if index in chosen:  # a repeated device makes CUDA (and torch) see none at all
            return []
        chosen.append(index)
    return chosen


def _resolve(entry: str, uuids: Sequence[str]) -> int | None:
    """One CUDA_VISIBLE_DEVICES entry (ordinal, strtoul-style, or unique UUID prefix) → index."""
    number = _ORDINAL.match(entry)
    if number:
        index = int(number.group())
        return index if 0 <= index < len(uuids) else None
    if not entry.startswith("GPU-"):  # MIG-... names no whole GPU that NVML indexes
        return None
    matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
    return matches[0] if len(matches) == 1 else None


def nvml_uuids(timeout: float = 10.0) -> list[str]:
    """UUIDs of all GPUs in NVML index order; [] when NVML is missing or does not answer."""
    return [gpu["uuid"] for gpu in gpu_description(timeout)["gpus"]]


class Sampler:
    """NVML opened once for the GPUs of a run; sample() reads every field on its own."""

    def __init__(
        self,
        indices: Sequence[int] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float | None = 10.0,
    ) -> None:
        self.available = False
        self.reason = "not opened"
        self.lost: dict[str, Any] | None = None
        self.unsupported: dict[int, set[str]] = {}
        self.opened_in_s = 0.0
        self._handles: list[tuple[int, Any]] = []
        self._readers: list[Reader] = []
        self._lost_gpus: set[int] = set()
        start = time.perf_counter()
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return
        self._nvml, self._error = pynvml, pynvml.NVMLError
        env = os.environ if env is None else env
        try:
            handles, why = (
                self._open(indices, env)
                if timeout is None
                else call_with_timeout(lambda: self._open(indices, env), timeout)
            )
        except TimeoutError as exc:
            handles, why = [], f"NVML hung while opening: {exc}"
        except (OSError, pynvml.NVMLError) as exc:
            handles, why = [], _why(exc)
        self._handles, self.available, self.reason = handles, bool(handles), why
        if handles:
            self._readers = self._make_readers()
        self.unsupported = {index: set() for index, _ in handles}
        self.opened_in_s = time.perf_counter() - start

    def _open(
        self, indices: Sequence[int] | None, env: Mapping[str, str]
    ) -> tuple[list[tuple[int, Any]], str]:
        """nvmlInit and handles; NVML is shut down again when no GPU is left to sample."""
        nvml = self._nvml
        nvml.nvmlInit()
        try:
            count = nvml.nvmlDeviceGetCount()
            if indices is None:
                indices = visible_gpus(
                    env,
                    [
                        _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                        for i in range(count)
                    ],
                )
            missing = [i for i in indices if not 0 <= i < count]
            if indices and not missing:
                return [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in indices], "ok"
        except BaseException:
            nvml.nvmlShutdown()
            raise
        nvml.nvmlShutdown()
        cvd = env.get("CUDA_VISIBLE_DEVICES")
        return [], (
            f"no GPU {missing[0]}: NVML sees {count} GPU(s)"
            if missing
            else f"no visible GPU (NVML sees {count}, CUDA_VISIBLE_DEVICES={cvd!r})"
        )

    def _make_readers(self) -> list[Reader]:
        """One NVML call per entry, and the columns it fills."""
        n = self._nvml
        reasons = (
            getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or n.nvmlDeviceGetCurrentClocksThrottleReasons
        )

        def memory(h: Any) -> tuple[int, int]:
            info = n.nvmlDeviceGetMemoryInfo(h)
            return info.used // _MIB, info.total // _MIB

        return [
            (("temp_c",), lambda h: (n.nvmlDeviceGetTemperature(h, TEMPERATURE_GPU),)),
            (("power_w",), lambda h: (n.nvmlDeviceGetPowerUsage(h) / 1000.0,)),
            (("power_limit_w",), lambda h: (n.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,)),
            (("util_pct",), lambda h: (n.nvmlDeviceGetUtilizationRates(h).gpu,)),
            (("mem_used_mib", "mem_total_mib"), memory),
            (("sm_clock_mhz",), lambda h: (n.nvmlDeviceGetClockInfo(h, CLOCK_SM),)),
            (("fan_pct",), lambda h: (n.nvmlDeviceGetFanSpeed(h),)),
            (("throttle",), lambda h: (reasons(h),)),
        ]

    def sample(self, t: float | None = None) -> list[dict[str, Any]]:
        """One row per GPU (telemetry columns); a field NVML cannot read is None."""
        if not self.available:
            return []
        t = time.time() if t is None else t
        rows = []
        for index, handle in self._handles:
            if index in self._lost_gpus:
                continue
            row: dict[str, Any] = {"t": t, "gpu": index, "n": 1, **dict.fromkeys(FIELDS)}
            skip = self.unsupported[index]
            for columns, read in self._readers:
                if columns[0] in skip:
                    continue
                try:
                    row.update(zip(columns, read(handle)))
                except self._error as exc:
                    code = getattr(exc, "value", None)
                    if code == ERROR_GPU_IS_LOST:
                        self._lost_gpus.add(index)
                        self.lost = self.lost or {"gpu": index, "error": str(exc)}
                        break
                    if code in PERMANENT_ERRORS:  # e.g. no fan on datacenter cards
                        skip.update(columns)
            rows.append(row)
        return rows

    def processes(self, gpu: int) -> list[dict[str, Any]] | None:
        """Compute processes on one GPU (pid, used_mib, name); None when NVML cannot say."""
        if not self.available:
            return None
        handle = dict(self._handles).get(gpu)
        list_fn = getattr(self._nvml, "nvmlDeviceGetComputeRunningProcesses", None)
        if handle is None or list_fn is None:
            return None
        try:
            procs = list_fn(handle)
        except self._error:
            return None
        return [
            {
                "pid": p.pid,
                "name": _comm(p.pid),
                "used_mib": None if p.usedGpuMemory is None else p.usedGpuMemory // _MIB,
            }
            for p in procs
        ]

    def close(self) -> None:
        """nvmlShutdown (once); sample() returns [] afterwards."""
        if self.available:
            self.available, self.reason = False, "closed"
            try:
                self._nvml.nvmlShutdown()
            except self._error as exc:
                self.reason = f"closed ({exc})"


class TelemetryThread(threading.Thread):
    """Samples every interval_s into a buffer the supervisor drains; a daemon, never joined."""

    def __init__(self, sampler: Sampler, interval_s: float = 1.0, max_rows: int = 100_000):
        super().__init__(name="telemetry", daemon=True)
        self.sampler = sampler
        self.interval_s = interval_s
        self.started_monotonic: float | None = None
        self.last_sample_monotonic: float | None = None
        self.sample_cost_s: float | None = None  # moving average of one sample() call
        self.samples = 0
        self.error: str | None = None
        self._rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_rows)
        self._latest: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    @property
    def opened_in_s(self) -> float:
        """Seconds NVML took to open (first calls are slow)."""
        return self.sampler.opened_in_s

    def start(self) -> None:
        """Start sampling; stale() counts from here."""
        self.started_monotonic = time.monotonic()
        super().start()

    def run(self) -> None:
        """Sample until stop(); the lock is never held while NVML is called."""
        next_at = time.monotonic()
        while self.sampler.available and not self._halt.is_set():
            begin = time.perf_counter()
            try:
                rows = self.sampler.sample()
            except Exception as exc:  # a bug, not NVML: stop sampling; stale() reports it
                self.error = f"{type(exc).__name__}: {exc}"
                return
            cost = time.perf_counter() - begin
            avg = self.sample_cost_s
            self.sample_cost_s = cost if avg is None else 0.9 * avg + 0.1 * cost
            with self._lock:
                self._rows.extend(rows)
                self._latest.update((r["gpu"], r) for r in rows)
            self.samples += 1
            self.last_sample_monotonic = now = time.monotonic()
            next_at = max(next_at + self.interval_s, now)  # no burst after a slow sample
            self._halt.wait(next_at - now)

    def drain(self) -> list[dict[str, Any]]:
        """Rows sampled since the last drain, oldest first."""
        with self._lock:
            rows = list(self._rows)
            self._rows.clear()
        return rows

    def latest(self) -> list[dict[str, Any]]:
        """The newest row of each GPU, by GPU index."""
        with self._lock:
            return [dict(self._latest[g]) for g in sorted(self._latest)]

    def stale(self, now: float | None = None, factor: float = 5.0) -> bool:
        """True when a running sampler delivered nothing for factor × interval_s (NVML hung)."""
        if self.started_monotonic is None or self._halt.is_set() or not self.sampler.available:
            return False
        now = time.monotonic() if now is None else now
        last = self.last_sample_monotonic or self.started_monotonic
        return now - last > factor * self.interval_s

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end and wait up to timeout; False if it is stuck inside NVML."""
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout)
        return not self.is_alive()


def snapshot(indices: Sequence[int] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """One-shot GPU state for a stall diagnosis: rows, throttle names, processes; never hangs."""

    def read() -> dict[str, Any]:
        sampler = Sampler(indices, timeout=None)
        if not sampler.available:
            return {"available": False, "reason": sampler.reason}
        try:
            gpus = [
                {
                    **row,
                    "throttle_names": throttle_names(row["throttle"]),
                    "processes": sampler.processes(row["gpu"]),
                }
                for row in sampler.sample()
            ]
        finally:
            sampler.close()
        return {
            "available": True,
            "reason": "ok",
            "t": time.time(),
            "gpus": gpus,
            "lost": sampler.lost,
        }

    try:
        return call_with_timeout(read, timeout)
    except TimeoutError as exc:
        return {"available": False, "reason": str(exc)}


def _why(exc: BaseException) -> str:
    """A readable reason for an NVML that cannot be opened."""
    code = getattr(exc, "value", None)
    if code == ERROR_LIBRARY_NOT_FOUND:
        return "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine"
    if code == ERROR_DRIVER_NOT_LOADED:
        return "NVIDIA driver not loaded: check that nvidia-smi works"
    return f"NVML cannot be opened: {exc}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _comm(pid: int) -> str | None:
    """The command name of a pid from /proc; NVML gives host pids, so in a container it may be
    None or another process's name."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None

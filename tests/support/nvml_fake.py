# SPDX-License-Identifier: MIT
"""A fake pynvml module for tests: NVML cannot run on a machine without an NVIDIA driver.

In-process tests put fake_pynvml(...) into sys.modules. Subprocess tests (a real supervisor)
call write_pynvml(folder, gpus) and put folder on PYTHONPATH: the generated pynvml.py builds the
same fake from a JSON description, so the supervisor's real telemetry code runs against it.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 2**20
UUIDS = ["GPU-8c1e0f2a-1111-2222-3333-444455556666", "GPU-8c1f9d00-aaaa-bbbb-cccc-ddddeeeeffff",
         "GPU-0b7a4c55-9999-8888-7777-666655554444"]
REPO = Path(__file__).resolve().parents[2]


class FakeNVMLError(Exception):
    """pynvml.NVMLError as the code sees it: an exception with an NVML return code."""

    NAMES = {3: "Not Supported", 9: "Driver Not Loaded", 12: "NVML Shared Library Not Found",
             15: "GPU is lost", 999: "Unknown Error"}

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self.NAMES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGPU:
    """One GPU's readings; fail[call] lists error codes raised by that call's next calls."""

    uuid: str
    temp: int = 64
    power_mw: int = 85_500
    limit_mw: int = 140_000
    util: int = 97
    mem_used: int = 9000 * MIB
    mem_total: int = 16376 * MIB
    sm: int = 1560
    fan: int | None = 41  # None: NotSupported, as on datacenter cards
    slowdown: int | None = 89  # the slowdown temperature threshold; None: NotSupported
    reasons: int = 0
    wobble: bool = False  # vary temp, power, util and reasons from sample to sample
    fail: dict[str, list[int]] = field(default_factory=dict)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    hang: threading.Event = field(default_factory=threading.Event)  # set: temperature blocks
    release: threading.Event = field(default_factory=threading.Event)
    procs: list[Any] = field(default_factory=list)
    lost_when: str | None = None  # once this file exists every call fails: GPU is lost
    hang_when: str | None = None  # once this file exists the temperature read blocks for good

    def call(self, name: str, value: Callable[[int], Any]) -> Any:
        self.calls[name] += 1
        if self.lost_when is not None and os.path.exists(self.lost_when):
            raise FakeNVMLError(15)
        if self.fail.get(name):
            raise FakeNVMLError(self.fail[name].pop(0))
        return value(self.calls[name] if self.wobble else 0)


def fake_pynvml(gpus: list[FakeGPU], init: Callable[[], None] = lambda: None,
                cuda: int = 13000) -> types.ModuleType:
    """A pynvml module serving gpus (a driver for CUDA `cuda`, 13000 = 13.0);
    mod.shutdowns counts nvmlShutdown calls."""
    mod = types.ModuleType("pynvml")
    mod.NVMLError = FakeNVMLError
    mod.shutdowns = 0

    def shutdown() -> None:
        mod.shutdowns += 1

    def temperature(h: FakeGPU, sensor: int) -> int:
        assert sensor == 0
        if h.hang_when is not None and os.path.exists(h.hang_when):
            h.hang.set()
        if h.hang.is_set():
            h.release.wait(30 if h.hang_when is None else 3600)
        return h.call("temp", lambda k: h.temp + k % 9)

    def memory(h: FakeGPU) -> Any:
        return h.call("mem", lambda k: types.SimpleNamespace(used=h.mem_used, total=h.mem_total,
                                                             free=h.mem_total - h.mem_used))

    def fan(h: FakeGPU) -> int:
        if h.fan is None:
            h.fail.setdefault("fan", []).append(3)
        return h.call("fan", lambda k: h.fan)

    def threshold(h: FakeGPU, kind: int) -> int:
        if h.slowdown is None or kind != 1:  # 1: NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            raise FakeNVMLError(3)
        return h.call("threshold", lambda k: h.slowdown)

    mod.nvmlInit, mod.nvmlShutdown = init, shutdown
    mod.nvmlSystemGetDriverVersion = lambda: "580.95.05"
    mod.nvmlSystemGetCudaDriverVersion = lambda: cuda
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    mod.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    mod.nvmlDeviceGetUUID = lambda h: h.uuid.encode()
    mod.nvmlDeviceGetTemperature = temperature
    mod.nvmlDeviceGetTemperatureThreshold = threshold
    mod.nvmlDeviceGetPowerUsage = lambda h: h.call("power", lambda k: h.power_mw + 1000 * (k % 5))
    mod.nvmlDeviceGetEnforcedPowerLimit = lambda h: h.call("limit", lambda k: h.limit_mw)
    mod.nvmlDeviceGetUtilizationRates = lambda h: h.call(
        "util", lambda k: types.SimpleNamespace(gpu=h.util - k % 7, memory=40))
    mod.nvmlDeviceGetMemoryInfo = memory
    mod.nvmlDeviceGetClockInfo = lambda h, clock: h.call("sm", lambda k: h.sm if clock == 1 else 0)
    mod.nvmlDeviceGetFanSpeed = fan
    mod.nvmlDeviceGetCurrentClocksEventReasons = lambda h: h.call(
        "reasons", lambda k: h.reasons | (0x40 if k % 4 == 1 else 0) | (0x1 if k % 3 == 0 else 0))
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: h.call("procs", lambda k: h.procs)
    return mod


SETTINGS = ("uuid", "temp", "power_mw", "limit_mw", "util", "fan", "slowdown", "lost_when",
            "hang_when")


def write_pynvml(folder: Path, gpus: list[FakeGPU]) -> Path:
    """Write folder/pynvml.py serving these GPUs (their settings, not their call counts)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = [{k: getattr(g, k) for k in SETTINGS} for g in gpus]
    (folder / "pynvml.py").write_text(
        "# generated by tests/support/nvml_fake.py: a fake NVML for a supervisor under test\n"
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.support.nvml_fake import FakeGPU, fake_pynvml\n"
        f"_mod = fake_pynvml([FakeGPU(**g) for g in json.loads({json.dumps(spec)!r})])\n"
        "globals().update({k: v for k, v in vars(_mod).items() if not k.startswith('__')})\n")
    return folder

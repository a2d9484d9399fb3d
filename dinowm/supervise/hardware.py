# SPDX-License-Identifier: MIT
"""One-time description of the machine: GPU, driver, CUDA, CPU, RAM, swap (no torch import)."""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from dinowm.supervise.bounded import call_with_timeout


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_description(timeout: float = 10.0) -> dict[str, Any]:
    """GPUs through NVML: {'nvml': 'ok' | reason, 'driver', 'cuda', 'gpus': [...]}."""
    try:
        import pynvml
    except ImportError:
        return {"nvml": "unavailable: nvidia-ml-py is not installed", "gpus": []}

    def read() -> dict[str, Any]:
        pynvml.nvmlInit()
        try:
            out: dict[str, Any] = {"nvml": "ok", "gpus": []}
            out["driver"] = _text(pynvml.nvmlSystemGetDriverVersion())
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
            out["cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                out["gpus"].append(
                    {
                        "index": i,
                        "name": _text(pynvml.nvmlDeviceGetName(h)),
                        "uuid": _text(pynvml.nvmlDeviceGetUUID(h)),
                        "vram_mib": int(mem.total // 2**20),
                    }
                )
            return out
        finally:
            pynvml.nvmlShutdown()

    try:
        return call_with_timeout(read, timeout)
    except TimeoutError as exc:
        return {"nvml": f"unavailable: {exc}", "gpus": []}
    except pynvml.NVMLError as exc:
        return {"nvml": f"unavailable: {exc}", "gpus": []}
    except OSError as exc:
        return {"nvml": f"unavailable: {exc}", "gpus": []}


def _cpuinfo() -> dict[str, Any]:
    model, physical, cores = "", set(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    phys = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "physical id":
            phys = value
            physical.add(value)
        elif key == "core id":
            cores.add((phys, value))
    threads = os.cpu_count() or 0
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cpu_threads": threads,
        "cpu_cores": len(cores) or threads,
        "cpu_sockets": len(physical) or 1,
    }


def _cpu_mhz(name: str) -> float | None:
    path = Path(f"/sys/devices/system/cpu/cpu0/cpufreq/{name}")
    try:
        return int(path.read_text()) / 1000.0
    except (OSError, ValueError):
        return None


def _meminfo() -> dict[str, int | None]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "ram_total_mib": values.get("MemTotal"),
        "ram_available_mib": values.get("MemAvailable"),
        "swap_total_mib": values.get("SwapTotal"),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe(nvml_timeout: float = 10.0) -> dict[str, Any]:
    """The user's "System Hardware" section as a flat dict (plus 'gpus', a list)."""
    gpu = gpu_description(nvml_timeout)
    gpus = gpu.get("gpus", [])
    first = gpus[0] if gpus else {}
    return {
        "collected_at": time.time(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "nvml": gpu["nvml"],
        "driver": gpu.get("driver"),
        "cuda": gpu.get("cuda"),
        "gpu_name": first.get("name"),
        "gpu_count": len(gpus),
        "gpu_vram_mib": first.get("vram_mib"),
        "gpus": gpus,
        **_cpuinfo(),
        "cpu_max_mhz": _cpu_mhz("cpuinfo_max_freq"),
        "cpu_min_mhz": _cpu_mhz("cpuinfo_min_freq"),
        **_meminfo(),
    }


def gpu_summary(hw: dict[str, Any]) -> str:
    """'NVIDIA RTX A4000, 16,376 MiB' or 'no GPU (reason)'."""
    if hw.get("gpu_name"):
        more = f" (+{hw['gpu_count'] - 1} more)" if (hw.get("gpu_count") or 0) > 1 else ""
        return f"{hw['gpu_name']}, {hw['gpu_vram_mib']:,} MiB{more}"
    reason = hw.get("nvml") or "unknown"
    return "no GPU" + ("" if reason == "ok" else f" ({reason.removeprefix('unavailable: ')})")

# SPDX-License-Identifier: MIT
"""The GPU through NVML: is it answering, does torch's CUDA build fit the driver, is it hot."""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

from dinowm.doctor.check import FAIL, OK, SKIPPED, WARN, Check
from dinowm.schema import RunConfig
from dinowm.supervise.bounded import call_with_timeout
from dinowm.supervise.telemetry import ERROR_GPU_IS_LOST, PERMANENT_ERRORS, TEMPERATURE_GPU, _why

THRESHOLD_SLOWDOWN = 1  # nvmlTemperatureThresholds_t: the GPU slows its clocks above this
HEADROOM_C = 10.0  # a reading taken at rest: under load the GPU warms by more than this

# Each field read on its own; a GPU without one (no fan on datacenter cards) is noted, not failed.
FIELDS: dict[str, Any] = {
    "temperature": lambda n, h: n.nvmlDeviceGetTemperature(h, TEMPERATURE_GPU),
    "slowdown threshold": lambda n, h: n.nvmlDeviceGetTemperatureThreshold(h, THRESHOLD_SLOWDOWN),
    "power": lambda n, h: n.nvmlDeviceGetPowerUsage(h),
    "power limit": lambda n, h: n.nvmlDeviceGetEnforcedPowerLimit(h),
    "utilisation": lambda n, h: n.nvmlDeviceGetUtilizationRates(h).gpu,
    "memory": lambda n, h: n.nvmlDeviceGetMemoryInfo(h).total,
    "fan": lambda n, h: n.nvmlDeviceGetFanSpeed(h),
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_nvml(nvml: ModuleType | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """{'ok', 'reason', 'driver', 'cuda': (major, minor), 'gpus': [{index, name, fields,
    unsupported, lost}]}; nvml is the pynvml module (imported when None)."""
    if nvml is None:
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return {
                "ok": False,
                "missing": True,
                "gpus": [],
                "reason": "nvidia-ml-py is not installed",
            }

    def read() -> dict[str, Any]:
        nvml.nvmlInit()
        try:
            cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
            out: dict[str, Any] = {
                "ok": True,
                "reason": "ok",
                "gpus": [],
                "driver": _text(nvml.nvmlSystemGetDriverVersion()),
                "cuda": (cuda // 1000, cuda % 1000 // 10),
            }
            for index in range(nvml.nvmlDeviceGetCount()):
                out["gpus"].append(_read_gpu(nvml, index))
            return out
        finally:
            nvml.nvmlShutdown()

    try:
        return call_with_timeout(read, timeout)
    except TimeoutError as exc:
        return {"ok": False, "hung": True, "reason": str(exc), "gpus": []}
    except (OSError, nvml.NVMLError) as exc:
        return {"ok": False, "reason": _why(exc), "gpus": []}


def _read_gpu(nvml: ModuleType, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    gpu: dict[str, Any] = {
        "index": index,
        "name": _text(nvml.nvmlDeviceGetName(handle)),
        "fields": {},
        "unsupported": [],
        "lost": None,
    }
    for field, read in FIELDS.items():
        try:
            gpu["fields"][field] = read(nvml, handle)
        except AttributeError:  # this nvidia-ml-py has no such call
            gpu["unsupported"].append(field)
        except nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code == ERROR_GPU_IS_LOST:
                gpu["lost"] = str(exc)
                break
            if code in PERMANENT_ERRORS:  # not supported, no permission, no such function
                gpu["unsupported"].append(field)
            else:
                gpu.setdefault("errors", []).append(field)
    return gpu


def check_nvml(facts: dict[str, Any]) -> Check:
    """3. NVML loadable and answering (telemetry, the thermal pause and stall diagnosis)."""
    name = "NVML"
    if facts.get("missing"):
        return Check(
            name,
            WARN,
            "nvidia-ml-py is not installed: no GPU telemetry, no thermal pause",
            "pip install nvidia-ml-py",
        )
    if facts.get("hung"):
        return Check(
            name,
            FAIL,
            f"NVML hangs: {facts['reason']}",
            "check nvidia-smi; a driver that does not answer usually needs a reboot",
        )
    if not facts["ok"]:
        return Check(name, SKIPPED, f"no GPU: {facts['reason']}; training runs on the CPU")
    lost = [g for g in facts["gpus"] if g["lost"]]
    if lost:
        return Check(
            name,
            FAIL,
            f"GPU {lost[0]['index']} is lost ({lost[0]['lost']})",
            "check nvidia-smi and dmesg (Xid errors); a lost GPU needs a reboot",
        )
    gpus = ", ".join(f"{g['index']}: {g['name']}" for g in facts["gpus"]) or "no GPU"
    found = f"driver {facts['driver']}, {gpus}"
    notes = [
        f"GPU {g['index']} cannot report {', '.join(g['unsupported'])}"
        for g in facts["gpus"]
        if g["unsupported"]
    ]
    errors = [
        f"GPU {g['index']} failed to read {', '.join(g['errors'])}"
        for g in facts["gpus"]
        if g.get("errors")
    ]
    if errors:
        return Check(
            name,
            WARN,
            "; ".join([found, *errors]),
            "check nvidia-smi -q; telemetry records unreadable fields as absent",
        )
    return Check(
        name,
        OK,
        "; ".join([found, *notes]) + (" (recorded as absent in telemetry)" if notes else ""),
    )


def _cuda(text: str | None) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def check_cuda(torch: dict[str, Any], nvml: dict[str, Any]) -> Check:
    """2. torch's CUDA build against the CUDA version the driver supports."""
    name = "CUDA build"
    if not nvml["ok"] or not nvml["gpus"]:
        return Check(name, SKIPPED, "no GPU: training runs on the CPU")
    if "error" in torch or "error" in torch.get("torch", {"error": 1}):
        return Check(name, SKIPPED, "torch does not import (see torch location)")
    info, (dmaj, dmin) = torch["torch"], nvml["cuda"]
    driver = f"driver {nvml['driver']} supports CUDA up to {dmaj}.{dmin}"
    wheel = (
        f"pip install torch torchvision --index-url https://download.pytorch.org/whl/cu{dmaj}{dmin}"
    )
    built = _cuda(info.get("cuda"))
    if built is None:
        return Check(
            name,
            WARN,
            f"torch {info['version']} is a CPU build but NVML sees "
            f"{len(nvml['gpus'])} GPU(s): training would run on the CPU; {driver}",
            f"install a CUDA build: {wheel}",
        )
    found = f"torch {info['version']} built for CUDA {built[0]}.{built[1]}; {driver}"
    if built[0] > dmaj:
        return Check(
            name,
            FAIL,
            f"{found}: CUDA cannot start",
            f"update the NVIDIA driver to one for CUDA {built[0]}.{built[1]}, or {wheel}",
        )
    if built > (dmaj, dmin):
        return Check(
            name,
            WARN,
            f"{found}: runs through CUDA's minor-version compatibility, "
            f"kernels compiled at run time (PTX) may fail",
            f"update the NVIDIA driver, or {wheel}",
        )
    if info.get("cuda_available") is False:
        return Check(
            name,
            WARN,
            f"{found}, but torch.cuda.is_available() is False",
            "check CUDA_VISIBLE_DEVICES and that nvidia-smi lists the GPU",
        )
    return Check(name, OK, found)


def check_thermal(nvml: dict[str, Any], cfg: RunConfig, preset: str) -> Check:
    """4. Temperature now against the slowdown threshold and thermal.max_temp_c."""
    name = "GPU temperature"
    if not nvml["ok"] or not nvml["gpus"]:
        return Check(name, SKIPPED, "no GPU")
    pause = cfg.thermal.max_temp_c if cfg.thermal.enabled else None
    rows = []
    for gpu in nvml["gpus"]:
        temp, slow = (gpu["fields"].get(k) for k in ("temperature", "slowdown threshold"))
        rows.append(_thermal_row(gpu["index"], temp, slow, pause, preset))
    order = (SKIPPED, OK, WARN, FAIL)
    status, found, fix = max(rows, key=lambda r: order.index(r[0]))
    return Check(name, status, found, fix)


def _thermal_row(
    index: int, temp: float | None, slow: float | None, pause: float | None, preset: str
) -> tuple[str, str, str]:
    if temp is None:
        return SKIPPED, f"GPU {index} cannot report its temperature", ""
    key = (
        f"thermal.max_temp_c={pause:g} (preset {preset})"
        if pause is not None
        else "thermal.enabled=false"
    )
    limits = [
        f"slowdown at {slow:g} °C" if slow is not None else "slowdown threshold unknown",
        f"pause above {key}",
    ]
    found = f"GPU {index} at {temp:g} °C; {', '.join(limits)}"
    cool = "let it cool (airflow, fan curve, a lower power limit) before starting a run"
    if slow is not None and temp >= slow:
        return FAIL, f"{found}: the GPU is slowing itself down now", cool
    if pause is not None and temp > pause:
        return (
            FAIL,
            f"{found}: a run would pause before its first step",
            f"{cool}, or raise thermal.max_temp_c",
        )
    if pause is not None and slow is not None and pause >= slow:
        return (
            WARN,
            f"{found}: the GPU throttles before dinowm pauses",
            f"set thermal.max_temp_c below {slow:g}",
        )
    limit = min(x for x in (pause, slow, 1000.0) if x is not None)
    if limit - temp < HEADROOM_C:
        return WARN, f"{found}: only {limit - temp:g} °C of headroom at rest", cool
    return OK, f"{found}: {limit - temp:g} °C of headroom", ""

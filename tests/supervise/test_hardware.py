# SPDX-License-Identifier: MIT
"""Hardware description: the real no-GPU path here, and NVML through a fake module."""

from __future__ import annotations

import sys
import threading
import types

import pytest

from dinowm.supervise import hardware


class FakeNVMLError(Exception):
    pass


def _fake_pynvml(hang: threading.Event | None = None) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    mod.NVMLError = FakeNVMLError

    def init() -> None:
        if hang is not None:
            hang.wait(30)

    mem = types.SimpleNamespace(total=16376 * 2**20, used=0, free=16376 * 2**20)
    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: None
    mod.nvmlSystemGetDriverVersion = lambda: "570.195.03"
    mod.nvmlSystemGetCudaDriverVersion = lambda: 12080
    mod.nvmlDeviceGetCount = lambda: 1
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: b"NVIDIA RTX A4000"
    mod.nvmlDeviceGetUUID = lambda h: "GPU-1234"
    mod.nvmlDeviceGetMemoryInfo = lambda h: mem
    return mod


def test_describe_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    hw = hardware.describe()
    assert hw["gpu_name"] == "NVIDIA RTX A4000" and hw["gpu_vram_mib"] == 16376
    assert hw["driver"] == "570.195.03" and hw["cuda"] == "12.8" and hw["nvml"] == "ok"
    assert hardware.gpu_summary(hw) == "NVIDIA RTX A4000, 16,376 MiB"


def test_nvml_that_hangs_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(hang=release))
    try:
        hw = hardware.describe(nvml_timeout=0.3)
    finally:
        release.set()
    assert hw["gpu_count"] == 0 and "did not answer" in hw["nvml"]
    assert hardware.gpu_summary(hw).startswith("no GPU")


def test_nvml_error_is_a_normal_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _fake_pynvml()

    def fail() -> None:
        raise FakeNVMLError("Driver Not Loaded")

    mod.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    hw = hardware.describe()
    assert hw["gpus"] == [] and "Driver Not Loaded" in hw["nvml"]

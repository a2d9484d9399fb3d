# SPDX-License-Identifier: MIT
"""NVML through tests/support/nvml_fake.py: a hot GPU, a driver too old for torch's CUDA build,
unsupported fields, no driver at all."""

from __future__ import annotations

from dinowm.config import build
from dinowm.doctor import gpu
from dinowm.schema import all_keys
from tests.support.nvml_fake import UUIDS, FakeGPU, FakeNVMLError, fake_pynvml

CFG = build({k: key.default for k, key in all_keys().items()})  # thermal.max_temp_c = 82
TORCH = {"torch": {"version": "2.8.0+cu128", "cuda": "12.8", "cuda_available": True}}


def read(*gpus: FakeGPU, cuda: int = 13000) -> dict:
    return gpu.read_nvml(fake_pynvml(list(gpus), cuda=cuda))


def test_a_hot_gpu_fails_and_a_cool_one_has_headroom() -> None:
    hot = gpu.check_thermal(read(FakeGPU(UUIDS[0], temp=86)), CFG, "franka_f5_h3")
    assert hot.status == "fail"
    assert "GPU 0 at 86 °C" in hot.found and "thermal.max_temp_c=82" in hot.found
    assert "slowdown at 89 °C" in hot.found and "pause before its first step" in hot.found
    throttling = gpu.check_thermal(read(FakeGPU(UUIDS[0]), FakeGPU(UUIDS[1], temp=90)), CFG, "p")
    assert throttling.status == "fail" and "GPU 1" in throttling.found
    warm = gpu.check_thermal(read(FakeGPU(UUIDS[0], temp=75)), CFG, "p")
    assert warm.status == "warn" and "only 7 °C of headroom" in warm.found
    cool = gpu.check_thermal(read(FakeGPU(UUIDS[0], temp=45)), CFG, "p")
    assert cool.status == "ok" and "37 °C of headroom" in cool.found


def test_a_pause_above_the_slowdown_threshold_warns() -> None:
    cfg = build({**{k: key.default for k, key in all_keys().items()},
                 "thermal.max_temp_c": 95.0})
    check = gpu.check_thermal(read(FakeGPU(UUIDS[0], temp=40)), cfg, "p")
    assert check.status == "warn" and "set thermal.max_temp_c below 89" in check.fix


def test_a_driver_too_old_for_the_cuda_build() -> None:
    old = gpu.check_cuda(TORCH, read(FakeGPU(UUIDS[0]), cuda=11080))
    assert old.status == "fail"
    assert "built for CUDA 12.8" in old.found and "supports CUDA up to 11.8" in old.found
    assert "update the NVIDIA driver" in old.fix and "whl/cu118" in old.fix
    minor = gpu.check_cuda(TORCH, read(FakeGPU(UUIDS[0]), cuda=12040))
    assert minor.status == "warn" and "minor-version compatibility" in minor.found
    assert gpu.check_cuda(TORCH, read(FakeGPU(UUIDS[0]), cuda=12080)).status == "ok"
    cpu_build = {"torch": {"version": "2.8.0+cpu", "cuda": None}}
    assert gpu.check_cuda(cpu_build, read(FakeGPU(UUIDS[0]))).status == "warn"


def test_unsupported_fields_are_noted_and_a_lost_gpu_fails() -> None:
    datacenter = read(FakeGPU(UUIDS[0], fan=None, slowdown=None))
    check = gpu.check_nvml(datacenter)
    assert check.status == "ok" and "GPU 0 cannot report slowdown threshold, fan" in check.found
    assert "580.95.05" in check.found and "NVIDIA H100 80GB HBM3" in check.found
    lost = gpu.check_nvml(read(FakeGPU(UUIDS[0], fail={"temp": [15]})))
    assert lost.status == "fail" and "GPU 0 is lost" in lost.found


def test_no_driver_is_skipped_everywhere() -> None:
    def no_driver() -> None:
        raise FakeNVMLError(12)

    facts = gpu.read_nvml(fake_pynvml([], init=no_driver))
    nvml = gpu.check_nvml(facts)
    assert nvml.status == "skipped" and "no NVIDIA driver" in nvml.found
    assert gpu.check_cuda(TORCH, facts).status == "skipped"
    assert gpu.check_thermal(facts, CFG, "p").status == "skipped"

# SPDX-License-Identifier: MIT
"""GPU telemetry: the real no-NVML path here, and NVML through a fake pynvml module."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dinowm.store import Store
from dinowm.supervise import telemetry
from dinowm.supervise.telemetry import (Sampler, TelemetryThread, snapshot, throttle_names,
                                        visible_gpus)
from tests.support.nvml_fake import UUIDS, FakeGPU, FakeNVMLError, fake_pynvml
from tests.support.process import wait_until

MIB = 2**20
WAIT = {"timeout": 5.0, "interval": 0.005}  # wait_until: 5 s, polled every 5 ms


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Callable[..., types.ModuleType]:
    """install(gpus, init=...) puts a fake pynvml in sys.modules for this test."""

    def put(gpus: list[FakeGPU], init: Callable[[], None] = lambda: None) -> types.ModuleType:
        mod = fake_pynvml(gpus, init)
        monkeypatch.setitem(sys.modules, "pynvml", mod)
        return mod

    return put


def collect(thread: TelemetryThread, at_least: int) -> list[dict[str, Any]]:
    """Drain the thread until at least that many rows came."""
    rows: list[dict[str, Any]] = []
    wait_until(lambda: rows.extend(thread.drain()) or len(rows) >= at_least, **WAIT)
    return rows


# -- pure functions ------------------------------------------------------------------------


def test_throttle_names() -> None:
    assert throttle_names(0x41) == ["gpu_idle", "hw_thermal"]
    assert throttle_names(None) == [] and throttle_names(0) == []
    assert throttle_names(0x24 | 0x200) == ["sw_power_cap", "sw_thermal", "0x200"]
    assert throttle_names(telemetry.THERMAL_BITS) == ["hw_slowdown", "sw_thermal", "hw_thermal"]


def test_constants_match_the_installed_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    assert telemetry.TEMPERATURE_GPU == pynvml.NVML_TEMPERATURE_GPU
    assert telemetry.CLOCK_SM == pynvml.NVML_CLOCK_SM
    assert telemetry.ERROR_GPU_IS_LOST == pynvml.NVML_ERROR_GPU_IS_LOST
    assert telemetry.ERROR_LIBRARY_NOT_FOUND == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    assert telemetry.ERROR_DRIVER_NOT_LOADED == pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert telemetry.PERMANENT_ERRORS == {pynvml.NVML_ERROR_NOT_SUPPORTED,
                                          pynvml.NVML_ERROR_NO_PERMISSION,
                                          pynvml.NVML_ERROR_FUNCTION_NOT_FOUND}
    names = {"GpuIdle": "gpu_idle", "ApplicationsClocksSetting": "app_clocks",
             "SwPowerCap": "sw_power_cap", "HwSlowdown": "hw_slowdown",
             "SyncBoost": "sync_boost", "SwThermalSlowdown": "sw_thermal",
             "HwThermalSlowdown": "hw_thermal", "HwPowerBrakeSlowdown": "hw_power_brake",
             "DisplayClockSetting": "display_clocks"}
    prefix = ("nvmlClocksEventReason" if hasattr(pynvml, "nvmlClocksEventReasonGpuIdle")
              else "nvmlClocksThrottleReason")
    assert {getattr(pynvml, prefix + n): short for n, short in names.items()} == \
        telemetry.THROTTLE_REASONS


@pytest.mark.parametrize("value, expected", [
    (None, [0, 1, 2]),
    ("1", [1]),
    ("1,0", [1, 0]),
    (" 2 , 0", [2, 0]),
    ("", []),
    ("-1", []),
    ("0,-1,1", [0]),
    ("GPU-8c1f", [1]),
    ("GPU-0b7a4c55-9999-8888-7777-666655554444,0", [2, 0]),
    ("2,GPU-8c1e", [2, 0]),
    ("GPU-8c1", []),  # ambiguous prefix: CUDA stops there
    ("0,7,1", [0]),  # no GPU 7: the list ends at it
    ("1,foo,0", [1]),
    ("1,GPU-ffff,0", [1]),
    ("MIG-8c1e", []),
    ("0,1,0", []),  # a repeated device: CUDA sees none
    ("1gpu", [1]),  # strtoul reads the leading number, as CUDA does
])
def test_visible_gpus(value: str | None, expected: list[int]) -> None:
    env = {} if value is None else {"CUDA_VISIBLE_DEVICES": value}
    assert visible_gpus(env, UUIDS) == expected


def test_telemetry_never_imports_torch() -> None:
    code = "import sys, dinowm.supervise.telemetry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the real NVML of this machine -----------------------------------------------------------


def test_real_nvml_without_a_gpu_is_unavailable_not_an_error() -> None:
    sampler = Sampler([0])
    if sampler.available:  # a GPU machine: the real path must produce rows instead
        rows = sampler.sample()
        sampler.close()
        assert rows and rows[0]["gpu"] == 0 and rows[0]["mem_total_mib"] > 0
        return
    assert sampler.reason not in ("", "ok") and sampler.sample() == []
    assert "NVML" in sampler.reason or "nvidia-ml-py" in sampler.reason
    thread = TelemetryThread(sampler, interval_s=0.01)
    thread.start()
    assert thread.stop(timeout=2.0)
    assert thread.drain() == [] and thread.latest() == [] and thread.error is None
    assert not thread.stale(time.monotonic() + 60)
    snap = snapshot(timeout=5.0)
    assert snap["available"] is False and snap["reason"] == sampler.reason
    sampler.close()


# -- NVML through a fake module ------------------------------------------------------------


def test_sample_maps_every_field(install: Callable[..., types.ModuleType]) -> None:
    install([FakeGPU(UUIDS[0], reasons=0x41)])
    sampler = Sampler([0])
    assert sampler.available and sampler.reason == "ok" and sampler.opened_in_s >= 0
    assert sampler.sample(t=1234.5) == [{
        "t": 1234.5, "gpu": 0, "n": 1, "temp_c": 64, "power_w": 85.5, "power_limit_w": 140.0,
        "util_pct": 97, "mem_used_mib": 9000, "mem_total_mib": 16376, "sm_clock_mhz": 1560,
        "fan_pct": 41, "throttle": 0x41}]
    assert throttle_names(sampler.sample()[0]["throttle"]) == ["gpu_idle", "hw_thermal"]


def test_unsupported_fan_leaves_only_fan_none_and_is_not_asked_again(
        install: Callable[..., types.ModuleType]) -> None:
    h100 = FakeGPU(UUIDS[0], fan=None, power_mw=120_250, limit_mw=700_000)
    install([h100])
    sampler = Sampler([0])
    rows = [sampler.sample()[0] for _ in range(3)]
    assert all(r["fan_pct"] is None for r in rows)
    assert all(r[k] is not None for r in rows for k in telemetry.FIELDS if k != "fan_pct")
    assert rows[0]["power_w"] == 120.25 and rows[0]["power_limit_w"] == 700.0
    assert h100.calls["fan"] == 1 and h100.calls["temp"] == 3
    assert sampler.unsupported == {0: {"fan_pct"}}


def test_a_passing_nvml_error_blanks_one_field_once(
        install: Callable[..., types.ModuleType]) -> None:
    gpu = FakeGPU(UUIDS[0], fail={"power": [999], "mem": [999]})
    install([gpu])
    sampler = Sampler([0])
    first, second = sampler.sample()[0], sampler.sample()[0]
    blank = {k for k, v in first.items() if v is None}
    assert blank == {"power_w", "mem_used_mib", "mem_total_mib"}
    assert second["power_w"] == 85.5 and second["mem_used_mib"] == 9000
    assert gpu.calls["power"] == 2 and sampler.unsupported == {0: set()}


def test_lost_gpu_is_reported_and_the_others_keep_sampling(
        install: Callable[..., types.ModuleType]) -> None:
    good, bad = FakeGPU(UUIDS[0]), FakeGPU(UUIDS[1], fail={"util": [15]})
    install([good, bad])
    sampler = Sampler([0, 1])
    rows = sampler.sample()
    assert sampler.lost == {"gpu": 1, "error": "GPU is lost"}
    assert [r["gpu"] for r in rows] == [0, 1]
    assert rows[1]["temp_c"] == 64 and rows[1]["util_pct"] is None
    assert rows[1]["sm_clock_mhz"] is None and rows[1]["throttle"] is None
    assert all(v is not None for v in rows[0].values())
    assert [r["gpu"] for r in sampler.sample()] == [0]
    assert bad.calls["temp"] == 1 and good.calls["temp"] == 2


@pytest.mark.parametrize("code, words", [(12, "library not found"), (9, "driver not loaded"),
                                         (999, "Unknown Error")])
def test_nvml_that_cannot_open_gives_a_reason(install: Callable[..., types.ModuleType],
                                              code: int, words: str) -> None:
    def init() -> None:
        raise FakeNVMLError(code)

    install([FakeGPU(UUIDS[0])], init=init)
    sampler = Sampler([0])
    assert not sampler.available and words.lower() in sampler.reason.lower()
    assert sampler.sample() == [] and sampler.processes(0) is None
    sampler.close()


def test_no_visible_gpu_and_missing_index(install: Callable[..., types.ModuleType]) -> None:
    mod = install([FakeGPU(UUIDS[0]), FakeGPU(UUIDS[1])])
    hidden = Sampler(env={"CUDA_VISIBLE_DEVICES": ""})
    assert not hidden.available and "no visible GPU" in hidden.reason and mod.shutdowns == 1
    missing = Sampler([0, 5])
    assert not missing.available and missing.reason == "no GPU 5: NVML sees 2 GPU(s)"
    assert mod.shutdowns == 2


def test_sampler_follows_cuda_visible_devices(install: Callable[..., types.ModuleType]) -> None:
    mod = install([FakeGPU(UUIDS[0]), FakeGPU(UUIDS[1]), FakeGPU(UUIDS[2])])
    sampler = Sampler(env={"CUDA_VISIBLE_DEVICES": "GPU-0b7a,GPU-8c1e"})
    assert [r["gpu"] for r in sampler.sample()] == [2, 0]
    sampler.close()
    sampler.close()
    assert mod.shutdowns == 1 and sampler.sample() == []
    assert telemetry.nvml_uuids() == UUIDS and mod.shutdowns == 2


def test_thread_buffers_drains_and_stops_promptly(install: Callable[..., types.ModuleType]) -> None:
    install([FakeGPU(UUIDS[0], wobble=True), FakeGPU(UUIDS[1], wobble=True)])
    thread = TelemetryThread(Sampler([0, 1]), interval_s=0.005)
    assert thread.name == "telemetry" and thread.daemon
    thread.start()
    rows = collect(thread, 10)
    latest = thread.latest()
    assert [r["gpu"] for r in latest] == [0, 1]
    begin = time.monotonic()
    assert thread.stop() and time.monotonic() - begin < 1.0
    rows += thread.drain()
    assert thread.drain() == []
    newest = {r["gpu"]: r for r in rows}
    assert thread.latest() == [newest[0], newest[1]]
    assert len({(r["gpu"], r["t"]) for r in rows}) == len(rows)
    assert thread.sample_cost_s is not None and 0 < thread.sample_cost_s < 0.05
    assert thread.samples == len(rows) // 2 and thread.opened_in_s >= 0
    assert not thread.stale(time.monotonic() + 60)


def test_hanging_nvml_makes_the_thread_stale_without_blocking_the_caller(
        install: Callable[..., types.ModuleType]) -> None:
    gpu = FakeGPU(UUIDS[0])
    install([gpu])
    thread = TelemetryThread(Sampler([0]), interval_s=0.01)
    thread.start()
    try:
        wait_until(lambda: thread.samples >= 2, **WAIT)
        assert thread.last_sample_monotonic is not None
        assert not thread.stale(thread.last_sample_monotonic + 0.04)
        gpu.hang.set()  # the next temperature read blocks inside "the driver"
        wait_until(thread.stale, **WAIT)
        assert thread.samples == gpu.calls["temp"]
        before = thread.latest()
        assert before and before[0]["temp_c"] == 64  # the last good row is still served
        begin = time.monotonic()
        assert thread.stop(timeout=0.05) is False and time.monotonic() - begin < 1.0
    finally:
        gpu.release.set()
    thread.join(5)
    assert not thread.is_alive() and thread.error is None


def test_drained_rows_in_a_real_store_and_exact_aggregation(
        install: Callable[..., types.ModuleType], tmp_path: Path) -> None:
    install([FakeGPU(UUIDS[0], wobble=True), FakeGPU(UUIDS[1], wobble=True, temp=70)])
    thread = TelemetryThread(Sampler([0, 1]), interval_s=0.002)
    thread.start()
    rows = collect(thread, 60)
    assert thread.stop()
    rows = [{**r, "run_id": "r1"} for r in rows + thread.drain()]

    store = Store(tmp_path / "runs.db")
    store.create_run({"id": "r1", "name": "r1", "preset": "demo", "config_json": "{}",
                      "config_hash": "x"})
    for start in range(0, len(rows), 25):  # one add_telemetry per supervisor tick
        store.add_telemetry(rows[start:start + 25])
    t0, t1 = 0.0, max(r["t"] for r in rows) + 1
    expected = {"max_gpu_temp_c": max(r["temp_c"] for r in rows),
                "mean_power_w": sum(r["power_w"] for r in rows) / len(rows),
                "mean_gpu_util": sum(r["util_pct"] for r in rows) / len(rows)}
    raw = store.telemetry_summary("r1", t0, t1)
    assert raw["samples"] == len(rows)
    for key, value in expected.items():
        assert raw[key] == pytest.approx(value)
    assert len({r["temp_c"] for r in rows}) > 1 and len({r["power_w"] for r in rows}) > 1

    bucket_s = 2.0**-5  # exact in binary: t - t % bucket_s is a fixed point of the bucketing
    assert store.aggregate_telemetry("r1", t1, bucket_s) == len(rows)
    folded = store.telemetry("r1")
    assert len(folded) < len(rows) and sum(r["n"] for r in folded) == len(rows)
    summary = store.telemetry_summary("r1", t0, t1)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value)
    groups: dict[tuple[int, float], int] = collections.defaultdict(int)
    for r in rows:
        groups[(r["gpu"], r["t"] - r["t"] % bucket_s)] |= r["throttle"]
    assert {(r["gpu"], r["t"]): r["throttle"] for r in folded} == groups
    assert any(r["throttle"] == 0x41 for r in folded)
    store.aggregate_telemetry("r1", t1, bucket_s)  # folding again changes nothing
    assert store.telemetry_summary("r1", t0, t1) == summary
    store.close()


def _store_with(tmp_path: Path, samples: list[tuple[float, float | None]]) -> Store:
    """A runs.db holding one run 'r1' with (t, power_w) samples of GPU 0."""
    store = Store(tmp_path / "runs.db")
    store.create_run({"id": "r1", "name": "r1", "preset": "demo", "config_json": "{}",
                      "config_hash": "x"})
    store.add_telemetry([{"run_id": "r1", "t": t, "gpu": 0, "n": 1, "temp_c": 60.0,
                          "power_w": p, "util_pct": 90.0} for t, p in samples])
    return store


def test_store_summary_stays_exact_when_a_reading_is_missing(tmp_path: Path) -> None:
    store = _store_with(tmp_path, [(0.0, 100.0), (1.0, None), (10.0, 200.0)])
    before = store.telemetry_summary("r1", 0, 100)["mean_power_w"]
    assert store.aggregate_telemetry("r1", before=10.0, bucket_s=10.0) == 2
    assert store.telemetry_summary("r1", 0, 100)["mean_power_w"] == pytest.approx(before)


def test_store_keeps_samples_when_before_splits_a_bucket(tmp_path: Path) -> None:
    store = _store_with(tmp_path, [(float(t), 100.0 + t) for t in range(10)])
    before = store.telemetry_summary("r1", 0, 100)["mean_power_w"]
    store.aggregate_telemetry("r1", before=5.0, bucket_s=10.0)
    store.aggregate_telemetry("r1", before=10.0, bucket_s=10.0)
    assert sum(r["n"] for r in store.telemetry("r1")) == 10
    assert store.telemetry_summary("r1", 0, 100)["mean_power_w"] == pytest.approx(before)


def test_snapshot_lists_processes_and_reasons(install: Callable[..., types.ModuleType]) -> None:
    gpu = FakeGPU(UUIDS[0], reasons=0x41, procs=[
        types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * MIB),
        types.SimpleNamespace(pid=2**22 + 7, usedGpuMemory=None)])
    mod = install([gpu, FakeGPU(UUIDS[1], fail={"procs": [3]})])
    snap = snapshot()
    assert snap["available"] and snap["reason"] == "ok" and snap["lost"] is None
    first, second = snap["gpus"]
    assert first["throttle_names"] == ["gpu_idle", "hw_thermal"] and first["temp_c"] == 64
    me = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert first["processes"] == [{"pid": os.getpid(), "name": me, "used_mib": 512},
                                  {"pid": 2**22 + 7, "name": None, "used_mib": None}]
    assert second["processes"] is None and mod.shutdowns == 1
    assert snapshot([1])["gpus"][0]["gpu"] == 1


def test_snapshot_and_sampler_do_not_hang_on_a_wedged_driver(
        install: Callable[..., types.ModuleType]) -> None:
    release = threading.Event()

    def init() -> None:
        release.wait(30)

    install([FakeGPU(UUIDS[0])], init=init)
    try:
        begin = time.monotonic()
        snap = snapshot(timeout=0.2)
        sampler = Sampler([0], timeout=0.2)
        assert time.monotonic() - begin < 2.0
    finally:
        release.set()
    assert snap == {"available": False, "reason": "NVML did not answer within 0.2 s"}
    assert not sampler.available and "hung" in sampler.reason and sampler.sample() == []

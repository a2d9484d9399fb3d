# SPDX-License-Identifier: MIT
"""bench/gpu_check.py without a GPU: its options, its time budget and the table it prints from
a results JSON, whichever parts ran, were skipped or failed (`--tiny` runs the rest on CPU)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.trainer import REPO

SCRIPT = REPO / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(variant: str, batch: int, s: float, vs: float) -> dict:
    return {"variant": variant, "mode": variant.split(":")[0], "batch": batch, "status": "ok",
            "s_per_step": s, "samples_per_s": batch / s, "achieved_tflops": 120.0,
            "pct_of_peak": 12.1, "peak_card": "H200 SXM", "peak_tflops": 989.0,
            "train_peak_mib": 8000.0, "val_peak_mib": 2600.0, "vs_reference": vs}


RESULT = {
    "device": "NVIDIA H200", "torch": "2.x", "wall_s": 431.0,
    "bench": {"rows": [_row("fast", 32, 0.08, 3.4), _row("fast:decoder=off", 32, 0.05, 5.4),
                       _row("reference", 32, 0.27, 1.0),
                       {"variant": "reference", "mode": "reference", "batch": 64,
                        "status": "oom", "error": "CUDA out of memory"}]},
    "profile": {"mode": "fast", "variant": "fast", "batch": 32, "step_s": 0.08,
                "components": [{"name": "encoder_forward", "share": 0.3},
                               {"name": "host_other", "share": -0.02}],
                "files": {"txt": "bench/results/profile_h200.txt"}},
    "capped_run": {"batch": 32, "status": "completed", "steps": [3],
                   "peak_gpu_mem_mib": 9000.0,
                   "memory_cap_log": ["2026-01-01 10:00:00 DINOWM_MEMORY_CAP_GIB=16: CUDA "
                                      "memory capped at 16 GiB (11.4% of NVIDIA H200's 139.8 "
                                      "GiB)"]},
    "probe": {"largest_fitting_batch": 48, "rows": [{"batch": 32, "peak_mib": 8100.0},
                                                    {"batch": 64, "peak_mib": None},
                                                    {"batch": 48, "peak_mib": 12000.0}]},
    "levers": {"rows": [{**_row("fast", 32, 0.08, 1.0), "warmup_s": 2.0},
                        {**_row("fast:compile=true", 32, 0.06, 1.0), "warmup_s": 60.0,
                         "ten_epoch_gain_s": 45.2},
                        {"variant": "fast:channels_last=false", "status": "oom",
                         "error": "CUDA out of memory"}]},
    "cache": {"frames_cached": 120, "build_s": 0.7, "within_bf16_tolerance": True,
              "relative_diff": {"loss": 1e-3}},
    "run": {"status": "completed", "wall_s": 40.0, "epochs": 4, "peak_gpu_mem_mib": 8000.0,
            "samples_per_s": [300.0, 380.0], "throttle_reasons": [],
            "telemetry": {"n": 40, "tmax": 50, "pmean": 400.0, "pmax": 500.0, "plimit": 700.0,
                          "umean": 90.0}},
    "prefetch": {"status": "completed", "samples_per_s": [310.0, 395.0]},
    "plan": {"1": {"s_per_plan": 1.5, "wall_s": 20.0},
             "8": {"error": "Traceback ... ValueError: boom"}},
    "ddp": {"skipped": "1 GPU here: the DDP check needs at least 2"},
}


def test_the_table_shows_every_part(check, capsys) -> None:
    check.print_table(RESULT)
    text = capsys.readouterr().out
    assert "== dinowm GPU check: NVIDIA H200, torch 2.x, 431 s ==" in text
    assert "fast:decoder=off" in text and "5.40x" in text and "oom: CUDA out of memory" in text
    assert "% peak of H200 SXM 989.0 TFLOP/s dense BF16 (vendor datasheet)" in text
    assert "encoder_forward 30%, host_other -2%" in text
    assert "16 GiB run at batch 32: completed, 3 steps + validation, peak 8.79 GiB " \
           "(DINOWM_MEMORY_CAP_GIB=16: CUDA memory capped at 16 GiB" in text
    assert "16 GiB probe: largest batch that fits 48 (peak 11.72 GiB), trials [32, 48, 64]" \
        in text
    assert "CEM plan, 8 goal(s): error" in text and "DDP check: skipped (1 GPU here" in text
    assert "perf.prefetch=true: completed, samples/s 395 against 380 without" in text
    assert "fast:compile=true" in text and "warm-up 60.0 s, 10 franka epochs +45 s against " \
        "fast" in text and "lever fast:channels_last=false: oom CUDA out of memory" in text


def test_the_table_says_which_parts_did_not_run(check, capsys) -> None:
    skipped = {"skipped": "20 s of the budget left, probe needs about 100 s"}
    result = {"device": "cpu", "torch": "2.x", "bench": {"error": "Traceback: boom"},
              **{part: skipped for part in ("profile", "capped_run", "probe", "levers", "cache",
                                            "run", "prefetch", "plan", "ddp")}}
    check.print_table(result)
    text = capsys.readouterr().out
    assert "bench: failed: Traceback: boom" in text
    for line in ("profile", "16 GiB run", "16 GiB probe", "levers", "feature cache", "supervised run", "perf.prefetch",
                 "CEM plan", "DDP check"):
        assert f"{line}: skipped (20 s of the budget left" in text


def test_a_part_starts_only_while_the_budget_lasts(check) -> None:
    clock = check.Clock(budget_s=120)
    assert clock.skip("profile") is None  # needs 40 s
    assert "needs about 200 s" in clock.skip("bench")["skipped"]
    assert check.slug("NVIDIA H100 80GB HBM3") == "h100_80gb_hbm3" and check.slug("cpu") == "cpu"


def test_the_script_prints_an_earlier_run_and_its_help(tmp_path: Path) -> None:
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(RESULT))
    out = subprocess.run([sys.executable, str(SCRIPT), "--print", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "16 GiB probe: largest batch that fits 48" in out.stdout
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--budget-s" in out.stdout and "--tiny" in out.stdout

"""`dinowm bench` on CPU at the demo size, `dinowm probe` without a GPU, the fit warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dinowm.config import load_project, model_hash, resolve
from dinowm.runs import fit_warning
from dinowm.store import Store
from tests.support.trainer import TINY


def test_bench_measures_both_modes_and_the_ratio(project_dir: Path, cli) -> None:
    out = cli("bench", "--preset", "demo", "--batch", "4", "--steps", "2", "--warmup", "1",
              "--json", "bench.json", *TINY, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads((project_dir / "bench.json").read_text())
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"fast", "reference"}
    for r in rows.values():
        assert r["status"] == "ok" and r["s_per_step"] > 0 and r["train_peak_mib"] > 0
        assert r["loader_samples_per_s"] > 0
    assert result["speedup_fast_over_reference"]["4"] > 0
    assert "reference/fast" in out.stdout and "x" in out.stdout


def test_bench_rejects_bad_batches(project_dir: Path, cli) -> None:
    out = cli("bench", "--batch", "8,zero")
    assert out.returncode == 2 and "comma list" in out.stderr


def test_probe_without_a_gpu_says_so(project_dir: Path, cli) -> None:
    out = cli("probe", "--preset", "demo")
    assert out.returncode == 0 and "no GPU" in out.stdout


def test_run_warns_before_a_batch_known_not_to_fit(project_dir: Path) -> None:
    cfg = resolve(load_project(), "franka_f5_h3").config
    hw = {"gpu_name": "NVIDIA RTX A4000"}
    with Store(project_dir / "runs.db") as store:
        assert fit_warning(store, cfg, hw) is None  # nothing probed yet
        for batch, fits, peak in ((8, 1, 6000.0), (16, 1, 9500.0), (32, 0, 18500.0)):
            store.add_probe({"gpu_name": hw["gpu_name"], "vram_mib": 16376, "preset": "p",
                             "model_hash": model_hash(cfg), "precision": "bf16",
                             "batch": batch, "peak_mib": peak, "fits": fits})
        text = fit_warning(store, cfg, hw)
        assert "micro-batch 32 did not fit NVIDIA RTX A4000" in text
        assert "largest that fits is 16" in text
        small = resolve(load_project(), "franka_f5_h3", ["training.batch_size=16"]).config
        assert fit_warning(store, small, hw) is None
        assert fit_warning(store, cfg, {"gpu_name": "other"}) is None


def test_bench_scaling_two_ranks_against_one(project_dir: Path, cli) -> None:
    out = cli("bench", "--preset", "demo", "--ranks", "2", "--steps", "6", "--json", "s.json",
              *TINY, "training.batch_size=8", timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads((project_dir / "s.json").read_text())
    assert [r["ranks"] for r in result["rows"]] == [1, 2]
    assert all(r["status"] == "ok" and r["samples_per_s"] > 0 and r["steps"] == 6
               for r in result["rows"])
    one, two = (r["samples_per_s"] for r in result["rows"])
    # the efficiency is what the rows say (a timing bound would only measure the machine's load)
    assert result["efficiency"] == pytest.approx(two / (2 * one)) and result["batch_size"] == 8
    assert "scaling demo, global batch 8" in out.stdout and "%" in out.stdout
    assert not list((project_dir / "outputs" / ".bench_runs").iterdir())  # cleaned up
    out = cli("bench", "--gpus", "2", "--preset", "demo")
    assert out.returncode == 2 and "no GPU is visible" in out.stderr

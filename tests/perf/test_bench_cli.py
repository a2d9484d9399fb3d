# SPDX-License-Identifier: MIT
"""`dinowm bench` on CPU at the demo size (modes, variants side by side, the profile),
`dinowm probe` without a GPU, the memory cap refused without one, the fit warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dinowm.config import load_project, model_hash, resolve
from dinowm.runs import fit_warning
from dinowm.store import Store
from dinowm.supervise.hardware import gpu_description
from dinowm.perf.profile import OTHER, PARTS
from tests.support.trainer import TINY


def test_bench_variants_side_by_side(project_dir: Path, cli) -> None:
    variants = "fast,fast:decoder_every=4,fast:decoder=off,reference"
    out = cli("bench", "--preset", "demo", "--batch", "4", "--steps", "4", "--warmup", "1",
              "--variants", variants, "--json", "v.json", *TINY, timeout=600,
              env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads((project_dir / "v.json").read_text())
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == variants.split(",") and result["reference"] == "reference"
    assert all(r["status"] == "ok" and r["achieved_tflops"] > 0 for r in rows.values())
    assert [(rows[v]["mode"], rows[v]["decoder"], rows[v]["decoder_every"]) for v in rows] == [
        ("fast", "on", 1), ("fast", "on", 4), ("fast", "off", None), ("reference", "on", 1)]
    flops = [rows[v]["flop_per_step"] for v in variants.split(",")[:3]]
    assert flops == sorted(flops, reverse=True) and flops[2] > 0  # less decoder, fewer FLOPs
    for r in rows.values():
        assert r["s_per_step"] > 0 and r["train_peak_mib"] > 0 and r["loader_samples_per_s"] > 0
        assert r["warmup_s"] > 0 and 0 <= r["warmup_extra_s"] <= r["warmup_s"]
        assert r["vs_reference"] == pytest.approx(rows["reference"]["s_per_step"]
                                                  / r["s_per_step"])
        assert r["pct_of_peak"] is None and r["peak_note"] == "no peak: a CPU trial"
    # `--mode fast,reference` (the default) is the same list of variants: its ratio too
    assert result["speedup_fast_over_reference"]["4"] == pytest.approx(
        rows["fast"]["vs_reference"], rel=1e-3)
    assert "fast:decoder_every=4" in out.stdout and "no peak: a CPU trial" in out.stdout


@pytest.mark.extended
def test_bench_profile_breaks_one_step_down(project_dir: Path, cli) -> None:
    out = cli("bench", "--preset", "demo", "--batch", "4", "--steps", "4", "--warmup", "1",
              "--profile", "prof/tiny", *TINY, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads((project_dir / "prof" / "tiny.json").read_text())
    parts = {c["name"]: c["s"] for c in result["components"]}
    assert list(parts) == [*PARTS, OTHER] and all(parts[p] > 0 for p in PARTS)
    assert sum(parts.values()) == pytest.approx(result["step_s"])  # host/other: the rest
    # the parts of a step against the whole step, in medians (another process may take the
    # CPU for a moment): the synchronisations between the parts add little
    middle = len(result["samples"]) // 2
    whole = sorted(x["whole_s"] for x in result["samples"])[middle]
    decomposed = sorted(x["parts_s"] for x in result["samples"])[middle]
    assert decomposed <= 1.5 * whole
    assert result["mode"] == "fast" and result["batch"] == 4 and result["profiler"]["top"]
    text = (project_dir / "prof" / "tiny.txt").read_text()
    assert "predictor backward (z_loss)" in text and "Self CPU" in text
    assert "share of step" in out.stdout and "host/other" in out.stdout


@pytest.mark.parametrize("args, message", [
    (["--variants", "fats"], "'fats' does not start with a mode"),
    (["--variants", "fast:decoder_every"], "'decoder_every' of 'fast:decoder_every' is not "
                                           "KEY=VALUE"),
    (["--variants", "fast:decoder_evry=4"], "Did you mean 'training.decoder_every'?"),
    (["--variants", "fast,fast:decoder_every=0"], "training.decoder_every=0 is out of range"),
    (["--variants", "fast,fast"], "'fast' is given twice"),
    (["--variants", "fast:mode=reference"], "sets the mode twice"),
    (["--variants", "fast", "--mode", "fast"], "give --variants or --mode, not both"),
    (["--profile", "p", "--batch", "8,16"], "give one --batch, not 8,16"),
    (["--profile", "p", "--batch", "8", "--mode", "fast,reference"], "give one variant, not "
                                                                      "fast,reference"),
])
def test_bench_rejects_bad_variants_in_one_line(project_dir: Path, cli, args: list[str],
                                                message: str) -> None:
    out = cli("bench", "--preset", "demo", *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (project_dir / "outputs").exists()  # refused before any trial


@pytest.mark.skipif(bool(gpu_description()["gpus"]), reason="refused only without a GPU")
@pytest.mark.parametrize("command", ["bench", "probe"])
def test_the_memory_cap_needs_a_gpu(project_dir: Path, cli, command: str) -> None:
    out = cli(command, "--preset", "demo", "--mem-cap-gib", "16")
    assert out.returncode == 2
    assert out.stderr.startswith("error: --mem-cap-gib 16: no GPU is visible on this machine")
    assert len(out.stderr.strip().splitlines()) == 1


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


@pytest.mark.extended
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


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs CUDA: the cap limits the CUDA caching allocator")
def test_bench_under_a_memory_cap_on_a_gpu(project_dir: Path, cli) -> None:
    out = cli("bench", "--preset", "demo", "--batch", "4", "--steps", "2", "--warmup", "1",
              "--mode", "fast", "--mem-cap-gib", "1", "--json", "c.json", *TINY, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    row = json.loads((project_dir / "c.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["mem_cap_gib"] == 1 and row["train_peak_mib"] < 1024
    assert row["achieved_tflops"] > 0 and "capped at 1 GiB" in out.stdout
    assert (row["pct_of_peak"] is None) == (row["peak_tflops"] is None)

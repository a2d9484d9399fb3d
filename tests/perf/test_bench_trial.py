# SPDX-License-Identifier: MIT
"""The bench trial's step is the loop's: the decoder on its schedule or absent, the FLOPs of
what runs, and the profile's decomposed step the same computation as the whole one, bit for
bit (the same function, its backward in two)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from dinowm.config import load_project, resolve, to_dict
from dinowm.perf.bench import build_trial, flop_per_step, throughput
from dinowm.perf.profile import PARTS, decomposed_step
from dinowm.data.synth import write_synthetic_dataset
from tests.support.trainer import REPO, TINY


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "data"
    write_synthetic_dataset(path, episodes=4, length=30, image_size=32, seed=0)
    return path


def _trial(data: Path, *overrides: str, mode: str = "fast"):
    cfg = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo",
                  [*TINY, *overrides]).config
    return build_trial({"config": to_dict(cfg), "data_path": str(data), "mode": mode,
                        "batch": 4})


def _batch(t):
    return next(iter(t.loader))


def test_the_decoder_trains_on_its_schedule_only(data: Path) -> None:
    t = _trial(data, "training.decoder_every=4")
    batch = _batch(t)
    for i in range(8):
        t.step(batch, i)
        assert ("decoder_recon_loss_reconstructed" in t.stepper.out) == (i % 4 == 0)
    steps = {name: next(iter(opt.state.values()))["step"].item()
             for name, opt in t.optimizers.items()}
    assert steps == {"predictor": 8, "decoder": 2, "action_proprio_encoders": 8}  # steps 0, 4


def test_a_model_without_its_decoder_benches(data: Path) -> None:
    t = _trial(data, "model.decoder=off")
    assert "decoder" not in t.optimizers and not t.model.has_decoder
    loss = t.step(_batch(t), 0)  # step 0 decodes predictions in fast mode: not without one
    out = t.stepper.out
    assert loss == out["z_loss"].item() and "decoder_recon_loss_pred" not in out


def test_the_flops_are_those_of_what_the_step_runs(data: Path) -> None:
    steps = range(1, 9)  # no step that decodes predictions (a metric, every 10th)
    flops = {}
    for name, overrides in (("fast", []), ("every4", ["training.decoder_every=4"]),
                            ("off", ["model.decoder=off"])):
        t = _trial(data, *overrides)
        flops[name] = flop_per_step(t, _batch(t), steps)
    assert flops["fast"] > flops["every4"] > flops["off"] > 0
    # the decoder's share, trained on 2 of the 8 steps (4 and 8) instead of all 8
    assert flops["every4"] - flops["off"] == pytest.approx((flops["fast"] - flops["off"]) / 4,
                                                           rel=0.05)


def test_achieved_tflops_against_the_card_s_peak() -> None:
    h200 = throughput(2e12, 0.5, "NVIDIA H200")
    assert h200["achieved_tflops"] == 4.0 and h200["peak_tflops"] == 989.0
    assert h200["pct_of_peak"] == pytest.approx(100 * 4 / 989) and h200["peak_note"] is None
    assert throughput(2e12, 0.5, None)["peak_note"] == "no peak: a CPU trial"
    other = throughput(2e12, 0.5, "Tesla T4")
    assert other["pct_of_peak"] is None and "no dense BF16 peak known for Tesla T4" in \
        other["peak_note"]


@pytest.mark.parametrize("overrides", [[], ["training.decoder_every=4"], ["perf.mode=reference"]])
def test_the_decomposed_step_is_the_whole_step(data: Path, overrides: list[str]) -> None:
    whole, parts = _trial(data, *overrides), _trial(data, *overrides)
    batch = _batch(whole)
    for i in (0, 1, 2):  # step 0 trains the decoder and decodes predictions; 1 and 2 neither
        torch.manual_seed(i)  # the same dropout masks in both
        loss = whole.step(copy.deepcopy(batch), i)
        torch.manual_seed(i)
        seconds, parted = decomposed_step(parts, iter([copy.deepcopy(batch)]), i)
        assert set(seconds) == set(PARTS) and min(seconds.values()) >= 0
        assert parted == loss
        out, other = whole.stepper.out, parts.stepper.out
        assert set(out) == set(other)
        for key in out:
            assert torch.equal(out[key], other[key]), key
    for (name, a), b in zip(whole.model.named_parameters(), parts.model.parameters()):
        assert torch.equal(a, b), name
    for name, opt in whole.optimizers.items():
        for sa, sb in zip(opt.state.values(), parts.optimizers[name].state.values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's refusal; CUDA applies the cap")
def test_a_capped_trial_needs_cuda(data: Path) -> None:
    cfg = resolve(load_project(REPO / "dinowm" / "dinowm.toml"), "demo", TINY).config
    with pytest.raises(RuntimeError, match="a memory cap needs CUDA"):
        build_trial({"config": to_dict(cfg), "data_path": str(data), "mode": "fast",
                     "batch": 4, "mem_cap_gib": 16})

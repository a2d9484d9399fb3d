# SPDX-License-Identifier: MIT
"""Each speed lever computes what the plain path computes (on the CPU, within the stated
tolerance): channels-last decoder convolutions, fused Adam/AdamW (the CUDA choice) against
foreach (the CPU's), and torch.compile of predictor and decoder."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from dinowm.data.datasets import prepare_frames
from tests.support.trainer import tiny_model


@pytest.fixture
def tiny(tiny_run, tmp_path: Path):
    cfg, model, train, _, _, _ = tiny_model(tiny_run("m", []), tmp_path / "data")
    items = [train[i] for i in (0, 4, 9, 13)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    visual = prepare_frames(batch["visual"], cfg.model.img_size)
    # eval(): no dropout, so that both sides of a comparison draw nothing at random
    return model.eval(), (visual, batch["proprio"], batch["action"])


def _step(model, inputs, optimizers=None) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    out = model(*inputs)
    out["loss"].backward()
    for opt in optimizers or ():
        opt.step()
    return out


def test_channels_last_decoder_computes_the_same_images_and_gradients(tiny) -> None:
    model, inputs = tiny
    other = copy.deepcopy(model)
    other.decoder.to_channels_last()
    assert next(other.decoder.parameters()).is_contiguous(memory_format=torch.channels_last)
    a, b = _step(model, inputs), _step(other, inputs)
    assert torch.allclose(a["loss"], b["loss"], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(model.decoder.named_parameters(), other.decoder.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name


def test_fused_optimisers_step_as_the_foreach_ones(tiny) -> None:
    model, inputs = tiny
    runs = {}
    for kind in ("foreach", "fused"):
        m = copy.deepcopy(model)
        groups = m.trainable_parameter_groups()
        opts = [torch.optim.AdamW(groups["predictor"], lr=5e-4, **{kind: True}),
                torch.optim.Adam(groups["decoder"], lr=3e-4, **{kind: True}),
                torch.optim.AdamW(groups["action_proprio_encoders"], lr=5e-4, **{kind: True})]
        losses = [_step(m, inputs, opts)["loss"].item() for _ in range(5)]
        runs[kind] = (losses, [p.detach().clone() for p in m.parameters() if p.requires_grad])
    assert runs["fused"][0] == pytest.approx(runs["foreach"][0], rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6)
               for a, b in zip(runs["fused"][1], runs["foreach"][1]))
    moved = [not torch.equal(a, b) for a, b in zip(
        runs["fused"][1], [p for p in model.parameters() if p.requires_grad])]
    assert all(moved)  # every trained tensor did change


@pytest.mark.slow
def test_compiled_predictor_and_decoder_compute_the_same_loss_and_gradients(tiny) -> None:
    model, inputs = tiny
    compiled = copy.deepcopy(model)
    # As Mode.prepare does: in place, the same state_dict keys. aot_eager traces and
    # differentiates the graphs as inductor does, without generating code (inductor's CPU
    # code is not what a GPU runs, and compiling it costs this machine a minute).
    compiled.predictor.compile(backend="aot_eager")
    compiled.decoder.compile(backend="aot_eager")
    assert compiled.state_dict().keys() == model.state_dict().keys()
    a, b = _step(model, inputs), _step(compiled, inputs)
    assert torch.allclose(a["loss"], b["loss"], rtol=1e-4, atol=1e-6)
    for (name, p), q in zip(model.predictor.named_parameters(), compiled.predictor.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-5), name

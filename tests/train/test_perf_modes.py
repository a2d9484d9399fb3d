# SPDX-License-Identifier: MIT
"""Fast path, reference mode and the frozen-feature cache compute the same thing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dinowm.data.datasets import ReferenceDataset, prepare_frames
from dinowm.data.features import TokenStore, build_cache
from tests.support.trainer import events, run_trainer, tiny_model


@pytest.fixture
def tiny_setup(tiny_run, tmp_path: Path):
    cfg, model, train, _, _, _ = tiny_model(tiny_run("m", []), tmp_path / "data")
    return cfg, model.eval(), train, tmp_path


def _batch(ds, idx: list[int]) -> dict[str, torch.Tensor]:
    items = [ds[i] for i in idx]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def test_reference_and_fast_compute_the_same_loss(tiny_setup) -> None:
    cfg, model, train, _ = tiny_setup
    idx = [0, 5, 9, 17]
    fast = _batch(train, idx)
    ref = _batch(ReferenceDataset(train, cfg.model.img_size), idx)
    assert ref["visual"].dtype == torch.float32 and fast["visual"].dtype == torch.uint8
    v_fast = prepare_frames(fast["visual"], cfg.model.img_size)
    assert torch.allclose(v_fast, ref["visual"], atol=1e-5)
    out_fast = model(v_fast, fast["proprio"], fast["action"])
    model.predictor.set_attention("explicit")
    out_ref = model(ref["visual"], ref["proprio"], ref["action"], keep_pred_graph=True)
    assert out_ref["_pred_graph"].requires_grad  # the public code's unused graph, kept
    for key in ("loss", "z_loss", "decoder_recon_loss_reconstructed", "z_visual_err_pred",
                "img_ssim_pred"):
        assert torch.allclose(out_fast[key], out_ref[key], atol=1e-5, rtol=1e-5), key


def test_cached_tokens_match_the_encoder(tiny_setup) -> None:
    cfg, model, train, tmp_path = tiny_setup
    folder = build_cache(model, train, tmp_path / "cache", torch.device("cpu"))
    assert build_cache(model, train, tmp_path / "cache", torch.device("cpu")) == folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dtype"] == "torch.float16" and len(manifest["weights_sha256"]) == 64
    train.tokens = TokenStore(folder)
    batch = _batch(train, [1, 2, 3])
    visual = prepare_frames(batch["visual"], cfg.model.img_size)
    plain = model(visual, batch["proprio"], batch["action"])
    cached = model(visual, batch["proprio"], batch["action"], tokens=batch["tokens"])
    assert torch.allclose(plain["loss"], cached["loss"], rtol=2e-3)
    assert torch.allclose(model.encode_visual(visual), batch["tokens"].float(), atol=2e-3)
    # another encoder (other weights) must not reuse the cache
    with torch.no_grad():
        next(model.encoder.parameters()).add_(1.0)
    assert build_cache(model, train, tmp_path / "cache", torch.device("cpu")) != folder


def test_training_with_the_cache_matches_training_without(tiny_run) -> None:
    common = ["training.epochs=2", "training.max_steps_per_epoch=3", "training.deterministic=true"]
    # reference mode's own data choices (statistics over all episodes, one fixed order) change
    # the numbers: with ours it must compute the same
    plain, cached, ref = (tiny_run("plain", common),
                          tiny_run("cached", [*common, "data.cache_features=true"]),
                          tiny_run("ref", [*common, "perf.mode=reference", "data.stats_from=train",
                                           "data.shuffle=epoch"]))
    for run_dir in (plain, cached, ref):
        out = run_trainer(run_dir)
        assert out.returncode == 0, out.stderr[-2000:]
    losses = {d.name: [(e["train_loss"], e["val_loss"]) for e in events(d) if e["type"] == "epoch"]
              for d in (plain, cached, ref)}
    for a, b in zip(losses["plain"], losses["cached"]):
        assert a == pytest.approx(b, rel=2e-3)
    for a, b in zip(losses["plain"], losses["ref"]):
        assert a == pytest.approx(b, rel=1e-4)
    assert (cached.parent / ".feature_cache").is_dir()


def test_the_encoder_under_inference_mode_trains_exactly_as_under_no_grad(tiny_setup) -> None:
    cfg, model, train, _ = tiny_setup
    batch = _batch(train, [0, 3, 7])
    visual = prepare_frames(batch["visual"], cfg.model.img_size)
    grads = {}
    for inference in (False, True):
        model.encoder_inference_mode = inference
        model.zero_grad(set_to_none=True)
        out = model(visual, batch["proprio"], batch["action"])
        out["loss"].backward()  # the tokens enter the graph only through a concatenation
        grads[inference] = (out["loss"].detach(),
                            [p.grad.clone() for p in model.parameters() if p.requires_grad])
    assert torch.equal(grads[False][0], grads[True][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[False][1], grads[True][1]))
    assert model.encode_visual(visual).is_inference()  # the lever was really on
    model.encoder_inference_mode = False
    assert not model.encode_visual(visual).is_inference()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the prefetcher copies "
                    "batches on a side CUDA stream (on the CPU the loop reads the loader itself)")
def test_prefetched_batches_equal_the_loaders(tiny_setup) -> None:
    from dinowm.train.device import Prefetcher

    _, _, train, _ = tiny_setup
    loader = torch.utils.data.DataLoader(train, batch_size=4, pin_memory=True)
    device = torch.device("cuda")
    got = list(Prefetcher(iter(loader), device))
    want = list(loader)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert all(a[k].device.type == "cuda" and torch.equal(a[k].cpu(), b[k]) for k in b)

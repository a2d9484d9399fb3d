# SPDX-License-Identifier: MIT
"""perf.mode decided once: what the fast path and reference mode each turn on."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dinowm.config import from_dict, with_values
from dinowm.model.build import build_model
from dinowm.train.state import seed_everything
from dinowm.data.datasets import ReferenceDataset, build_datasets
from dinowm.train.mode import TRAIN_DECODE_EVERY, Mode
from dinowm.data.synth import write_synthetic_dataset


def _tiny(tiny_run, tmp_path: Path, **changes):
    run_dir = tiny_run("mode", [])
    cfg = from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    cfg = with_values(cfg, **changes) if changes else cfg
    data = tmp_path / "data"
    write_synthetic_dataset(data, episodes=4, length=30, image_size=32, seed=0)
    train, _, _, info = build_datasets(data, frameskip=cfg.frameskip, num_hist=cfg.num_hist,
                                       num_pred=cfg.num_pred)
    seed_everything(0)
    return cfg, build_model(cfg, info["proprio_dim"], info["sample_action_dim"]), train


def test_fast_mode_follows_the_perf_and_cache_settings(tiny_run, tmp_path: Path) -> None:
    cfg, model, train = _tiny(tiny_run, tmp_path, perf__compile=True, data__cache_features="on",
                              perf__prefetch=True,
                              training__precision="bf16")
    mode = Mode.of(cfg)
    assert (mode.reference, mode.precision, mode.decode_every, mode.keep_pred_graph) == (
        False, "bf16", TRAIN_DECODE_EVERY, False)
    assert mode.cache_features == "on" and mode.compile and mode.compile_mode == "default"
    assert mode.encoder_inference_mode and mode.prefetch
    assert mode.dataset(train, cfg.model.img_size) is train
    with mode.validation_grad():
        assert not torch.is_grad_enabled()


def test_reference_mode_turns_every_fast_setting_off(tiny_run, tmp_path: Path) -> None:
    cfg, model, train = _tiny(tiny_run, tmp_path, perf__mode="reference", perf__compile=True,
                              data__cache_features="on", training__precision="bf16")
    mode = Mode.of(cfg)
    assert (mode.reference, mode.precision, mode.decode_every, mode.keep_pred_graph) == (
        True, "fp32", 1, True)
    assert mode.cache_features == "off" and not mode.compile
    assert not mode.encoder_inference_mode and not mode.prefetch
    assert isinstance(mode.dataset(train, cfg.model.img_size), ReferenceDataset)
    with torch.no_grad(), mode.validation_grad():
        assert torch.is_grad_enabled()
    mode.prepare(model, torch.device("cpu"))
    assert all(layer.attn.mode == "explicit" for layer in model.predictor.layers)


def test_channels_last_applies_to_the_decoder_on_cuda_only(tiny_run, tmp_path: Path) -> None:
    cfg, model, _ = _tiny(tiny_run, tmp_path, perf__channels_last=True)
    weight = model.decoder.upsample[0].weight  # (C, in_dim, 3, 3)
    Mode.of(cfg).prepare(model, torch.device("cpu"))
    assert not model.decoder.channels_last and weight.is_contiguous()
    # Only the device's type decides: the conversion itself runs on CPU tensors too.
    Mode.of(with_values(cfg, perf__mode="reference")).prepare(model, torch.device("cuda"))
    assert not model.decoder.channels_last
    Mode.of(with_values(cfg, perf__channels_last=False)).prepare(model, torch.device("cuda"))
    assert not model.decoder.channels_last
    Mode.of(cfg).prepare(model, torch.device("cuda"))
    assert model.decoder.channels_last
    assert model.decoder.upsample[0].weight is weight  # the optimisers' Parameter objects
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_the_feature_cache_auto_caches_on_a_gpu_within_its_budget(tiny_run, tmp_path: Path) -> None:
    from dinowm.data import features

    cfg, model, train = _tiny(tiny_run, tmp_path)
    assert cfg.data.cache_features == "auto"
    need = features.cache_bytes(model, train)
    assert need == sum(train.lengths) * model.num_patches * model.visual_dim * 2
    root, cuda, cpu = tmp_path / "outputs" / ".feature_cache", torch.device("cuda"), \
        torch.device("cpu")
    assert features.wanted("auto", model, train, root, cpu, 32) == (
        False, "off on the CPU (data.cache_features=auto)")
    on, why = features.wanted("auto", model, train, root, cuda, 32)
    assert on and why.startswith("on: ")
    on, why = features.wanted("auto", model, train, root, cuda, need / 2**30 / 2)
    assert not on and "over data.cache_max_gib" in why and "data.cache_features=on" in why
    assert features.wanted("on", model, train, root, cpu, 0)[0]
    assert not features.wanted("off", model, train, root, cuda, 32)[0]


def test_cache_features_takes_the_booleans_of_older_configs() -> None:
    from dinowm.config import from_dict, to_dict
    from dinowm.schema import RunConfig

    doc = to_dict(RunConfig())
    doc["data"]["cache_features"] = False  # a config.json of an earlier version
    assert from_dict(doc).data.cache_features == "off"
    doc["data"]["cache_features"] = True
    assert from_dict(doc).data.cache_features == "on"

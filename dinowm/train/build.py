"""RunConfig → model and optimisers, and the training state a checkpoint carries."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from dinowm.schema import RunConfig
from dinowm.train.encoder import build_encoder, load_dinov2_weights
from dinowm.train.model import WorldModel

TRAINED_PARTS = ("predictor", "decoder", "action_encoder", "proprio_encoder")


def build_model(cfg: RunConfig, proprio_dim: int, action_dim: int,
                load_weights: bool = True) -> WorldModel:
    """The world model of `cfg` for data with these dims (action_dim already x frameskip)."""
    m = cfg.model
    encoder = build_encoder(m.encoder, m.encoder_img_size, m.tiny_dim, m.tiny_depth, m.tiny_heads)
    if m.encoder == "dinov2_vits14" and load_weights:
        load_dinov2_weights(encoder, m.encoder_weights or None)
    predictor = {"depth": m.predictor_depth, "heads": m.predictor_heads,
                 "dim_head": m.predictor_dim_head, "mlp_dim": m.predictor_mlp_dim,
                 "dropout": m.predictor_dropout, "attention": m.attention}
    decoder = {"channels": m.decoder_channels, "res_blocks": m.decoder_res_blocks,
               "res_channels": m.decoder_res_channels}
    return WorldModel(encoder, proprio_dim, action_dim, cfg.num_hist, cfg.num_pred,
                      m.action_emb_dim, m.proprio_emb_dim, m.num_action_repeat,
                      m.num_proprio_repeat, m.concat_dim, predictor, decoder, m.img_size,
                      m.encoder_img_size, decoder=m.decoder == "on")


def build_optimizers(model: WorldModel, cfg: RunConfig,
                     device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """AdamW predictor, Adam decoder (when the model has one), AdamW action+proprio encoders
    (the encoder is frozen)."""
    t = cfg.training
    groups = model.trainable_parameter_groups()
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizers = {
        "predictor": torch.optim.AdamW(groups["predictor"], lr=t.predictor_lr, **fused),
        "decoder": torch.optim.Adam(groups["decoder"], lr=t.decoder_lr, **fused)
        if "decoder" in groups else None,
        "action_proprio_encoders": torch.optim.AdamW(groups["action_proprio_encoders"],
                                                     lr=t.action_encoder_lr, **fused),
    }
    return {name: opt for name, opt in optimizers.items() if opt is not None}


def step_optimizers(optimizers: dict[str, torch.optim.Optimizer], trains_decoder: bool) -> None:
    """One optimiser step of every part; the decoder's only on a step that trained it
    (training.decoder_every), so that its Adam counts the steps it learnt from."""
    for name, opt in optimizers.items():
        if name != "decoder" or trains_decoder:
            opt.step()


def model_state(model: WorldModel) -> dict[str, Any]:
    """State dicts of the trained parts (and of an untrained encoder, which no file restores)."""
    state = {name: getattr(model, name).state_dict() for name in TRAINED_PARTS
             if getattr(model, name) is not None}  # no decoder with model.decoder=off
    if not model.encoder.is_pretrained:
        state["encoder"] = model.encoder.state_dict()
    return state


def load_model_state(model: WorldModel, state: dict[str, Any]) -> None:
    """Load what model_state() saved, strictly."""
    for name in TRAINED_PARTS:
        if getattr(model, name) is None:
            continue  # model.decoder=off
        getattr(model, name).load_state_dict(state[name], strict=True)
    if "encoder" in state:
        model.encoder.load_state_dict(state["encoder"], strict=True)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states in weights_only-loadable types."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(random.getstate()[1]), random.getstate()[0]],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    internal, version = state["python"]
    random.setstate((version, tuple(internal), None))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

# SPDX-License-Identifier: MIT
"""RunConfig → the world model, and the state dicts of its parts that a checkpoint carries."""

from __future__ import annotations

from typing import Any

from dinowm.model.encoder import build_encoder, load_dinov2_weights
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig

TRAINED_PARTS = ("predictor", "decoder", "action_encoder", "proprio_encoder")


def build_model(
    cfg: RunConfig, proprio_dim: int, action_dim: int, load_weights: bool = True
) -> WorldModel:
    """The world model of `cfg` for data with these dims (action_dim already x frameskip)."""
    m = cfg.model
    encoder = build_encoder(m.encoder, m.encoder_img_size, m.tiny_dim, m.tiny_depth, m.tiny_heads)
    if m.encoder == "dinov2_vits14" and load_weights:
        load_dinov2_weights(encoder, m.encoder_weights or None)
    predictor = {
        "depth": m.predictor_depth,
        "heads": m.predictor_heads,
        "dim_head": m.predictor_dim_head,
        "mlp_dim": m.predictor_mlp_dim,
        "dropout": m.predictor_dropout,
        "attention": m.attention,
    }
    decoder = {
        "channels": m.decoder_channels,
        "res_blocks": m.decoder_res_blocks,
        "res_channels": m.decoder_res_channels,
    }
    return WorldModel(
        encoder,
        proprio_dim,
        action_dim,
        cfg.num_hist,
        cfg.num_pred,
        m.action_emb_dim,
        m.proprio_emb_dim,
        m.num_action_repeat,
        m.num_proprio_repeat,
        m.concat_dim,
        predictor,
        decoder,
        m.img_size,
        m.encoder_img_size,
        decoder=m.decoder == "on",
    )


def model_state(model: WorldModel) -> dict[str, Any]:
    """State dicts of the trained parts (and of an untrained encoder, which no file restores)."""
    state = {
        name: getattr(model, name).state_dict()
        for name in TRAINED_PARTS
        if getattr(model, name) is not None
    }  # no decoder with model.decoder=off
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

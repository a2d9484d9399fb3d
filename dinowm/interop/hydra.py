# SPDX-License-Identifier: MIT
"""hydra.yaml for the public DINO-WM planner: a run's resolved configuration in its keys, as YAML.

The public `plan.py` reads `<ckpt_base_path>/outputs/<model_name>/hydra.yaml` with OmegaConf:
the model's sizes, the encoder to build (DINOv2, never saved in the checkpoint) and the dataset
loader to call. `to_yaml` is a small block-style emitter (dinowm's environment has no PyYAML).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from dinowm.data.normalize import STAT_KEYS
from dinowm.schema import RunConfig

# Dataset loaders of the public code by our on-disk layout (its conf/env/*.yaml).
DATASET_TARGETS = {
    "point_maze": "datasets.point_maze_dset.load_point_maze_slice_train_val",
    "wall": "datasets.wall_dset.load_wall_slice_train_val",
}
VIT_TARGET = "models.vit.ViTPredictor"
VQVAE_TARGET = "models.vqvae.VQVAE"
PROPRIO_TARGET = "models.proprio.ProprioceptiveEmbedding"
N_EMBED = 2048  # the public decoder's codebook size (unused: quantize is off)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def default_dataset_target(env: str) -> str:
    """The public naming of a loader, `datasets.<env>_dset.load_<env>_slice_train_val`."""
    name = re.sub(r"\W", "_", env)
    return f"datasets.{name}_dset.load_{name}_slice_train_val"


def hydra_config(
    cfg: RunConfig,
    stats: dict[str, list[float]],
    layout: str,
    dataset_target: str,
    dinowm: dict[str, Any],
    paths: dict[str, str | None],
) -> dict[str, Any]:
    """The public train config's keys with this run's values, plus a `dinowm` section.

    layout: "franka", "point_maze" or "wall"; paths: ckpt_base_path and saved_folder.
    """
    m, d = cfg.model, cfg.data
    return {
        "ckpt_base_path": paths.get("ckpt_base_path"),
        "saved_folder": paths.get("saved_folder"),
        "training": _training(cfg),
        **_shapes(cfg),
        "model": {
            "_target_": "models.visual_world_model.VWorldModel",
            "image_size": m.img_size,
            "num_hist": cfg.num_hist,
            "num_pred": cfg.num_pred,
            "train_encoder": False,
            "train_predictor": True,
            "train_decoder": True,
        },
        "debug": False,
        "env": {
            "name": cfg.env,
            "args": [],
            "kwargs": {},
            "dataset": _dataset(cfg, layout, dataset_target),
            "decoder_path": None,
            "num_workers": d.num_workers,
        },
        **_modules(cfg),
        "dinowm": {
            **dinowm,
            "stats": {k: stats[k] for k in STAT_KEYS},
            "stats_source": _stats_source(cfg),
        },
    }


def _training(cfg: RunConfig) -> dict[str, Any]:
    """The public config's `training` section."""
    t = cfg.training
    return {
        "seed": cfg.seed,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "save_every_x_epoch": t.save_every_x_epoch,
        "num_reconstruct_samples": t.num_reconstruct_samples,
        "encoder_lr": t.encoder_lr,
        "decoder_lr": t.decoder_lr,
        "predictor_lr": t.predictor_lr,
        "action_encoder_lr": t.action_encoder_lr,
    }


def _shapes(cfg: RunConfig) -> dict[str, Any]:
    """The public config's top-level model shape keys."""
    m = cfg.model
    return {
        "img_size": m.img_size,
        "frameskip": cfg.frameskip,
        "concat_dim": m.concat_dim,
        "normalize_action": cfg.data.normalize_action,
        "action_emb_dim": m.action_emb_dim,
        "num_action_repeat": m.num_action_repeat,
        "proprio_emb_dim": m.proprio_emb_dim,
        "num_proprio_repeat": m.num_proprio_repeat,
        "num_hist": cfg.num_hist,
        "num_pred": cfg.num_pred,
        "has_predictor": True,
        "has_decoder": True,
    }


def _dataset(cfg: RunConfig, layout: str, dataset_target: str) -> dict[str, Any]:
    """The public config's env.dataset: the loader and its arguments."""
    d = cfg.data
    dataset: dict[str, Any] = {
        "_target_": dataset_target,
        "n_rollout": d.n_rollouts or None,
        "normalize_action": d.normalize_action,
        "data_path": d.path,
        "split_ratio": d.split_ratio,
    }
    if layout == "wall":
        dataset["split_mode"] = "random"
    dataset["transform"] = {
        "_target_": "datasets.img_transforms.default_transform",
        "img_size": cfg.model.img_size,
    }
    return dataset


def _modules(cfg: RunConfig) -> dict[str, Any]:
    """The public config's module sections: encoder, embeddings, decoder, predictor."""
    m = cfg.model
    embedding = {
        "_target_": PROPRIO_TARGET,
        "num_frames": 1,
        "tubelet_size": 1,
        "use_3d_pos": False,
    }
    return {
        "encoder": {
            "_target_": "models.dino.DinoV2Encoder",
            "name": "dinov2_vits14",
            "feature_key": "x_norm_patchtokens",
        },
        "action_encoder": dict(embedding),
        "proprio_encoder": dict(embedding),
        "decoder": {
            "_target_": VQVAE_TARGET,
            "channel": m.decoder_channels,
            "n_embed": N_EMBED,
            "n_res_block": m.decoder_res_blocks,
            "n_res_channel": m.decoder_res_channels,
            "quantize": False,
        },
        "predictor": {
            "_target_": VIT_TARGET,
            "depth": m.predictor_depth,
            "heads": m.predictor_heads,
            "dim_head": m.predictor_dim_head,
            "mlp_dim": m.predictor_mlp_dim,
            "dropout": m.predictor_dropout,
            "emb_dropout": 0,
            "pool": "mean",
        },
    }


def _stats_source(cfg: RunConfig) -> str:
    """Where the exported statistics come from, in words."""
    d = cfg.data
    if not d.normalize_action:
        return "identity: the run had data.normalize_action=false"
    return (
        f"the training split of {d.path} (split_ratio {d.split_ratio}, split_seed "
        f"{d.split_seed}): per-dimension mean, std + 1e-6, as dinowm trained with "
        f"them; the public loaders recompute them over all episodes"
    )


def _scalar(value: Any) -> str:
    """One YAML scalar: JSON's spelling, floats always with a '.' (YAML 1.1 wants one)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no JSON spelling")
        mantissa, _, exponent = repr(value).partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + (f"e{exponent}" if exponent else "")
    if value is None or isinstance(value, (bool, int, str)):
        return json.dumps(value)
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


def _key(key: str) -> str:
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
    return key if plain else json.dumps(key)


def to_yaml(value: dict[str, Any], indent: int = 0) -> str:
    """Block-style YAML of nested dicts; lists of scalars in flow style, strings JSON-quoted."""
    pad, lines = " " * indent, []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            lines.append(f"{pad}{_key(key)}:\n{to_yaml(item, indent + 2).rstrip()}")
        elif isinstance(item, dict):
            lines.append(f"{pad}{_key(key)}: {{}}")
        elif isinstance(item, (list, tuple)):
            lines.append(f"{pad}{_key(key)}: [{', '.join(_scalar(x) for x in item)}]")
        else:
            lines.append(f"{pad}{_key(key)}: {_scalar(item)}")
    return "".join(line + "\n" for line in lines)

# SPDX-License-Identifier: MIT
"""A dinowm checkpoint → the model folder the public DINO-WM planner (`plan.py`) loads.

The planner unpickles whole module objects of its own classes. We build those classes from the
user's checkout with the run's sizes, copy our weights in by name (every public parameter
exactly once), check that they compute what ours compute, and pickle them through that
checkout, so that only the checkout is needed to load them. Our checkpoints stay state dicts.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from dinowm import rundir
from dinowm.config import from_dict
from dinowm.errors import ConfigError, DinowmError
from dinowm.interop.hydra import DATASET_TARGETS, default_dataset_target, hydra_config, to_yaml
from dinowm.interop.statistics import planner_warning
from dinowm.model.build import build_model, load_model_state
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train import checkpoint as ckpt

TOLERANCE = 1e-4  # largest |ours - public| accepted on the check's outputs (fp32)
# Our parameter names → the public modules' (anchored prefixes, first match wins).
RULES: dict[str, list[tuple[str, str]]] = {
    "predictor": [
        (r"layers\.(\d+)\.attn\.", r"transformer.layers.\1.0."),
        (r"layers\.(\d+)\.ff\.", r"transformer.layers.\1.1."),
        (r"norm\.", "transformer.norm."),
        (r"pos_embedding$", "pos_embedding"),
    ],
    "decoder": [(r"upsample\.", "upsample_b.blocks."), (r"to_image\.", "dec.blocks.")],
    "action_encoder": [(r"proj\.", "patch_embed.")],
    "proprio_encoder": [(r"proj\.", "patch_embed.")],
}


@dataclass(frozen=True)
class Checkout:
    """The public model modules, imported from the user's DINO-WM checkout."""

    root: Path
    vit: ModuleType
    vqvae: ModuleType
    proprio: ModuleType


def import_checkout(root: Path) -> Checkout:
    """models.vit, models.vqvae and models.proprio of `root`, or a one-line ConfigError."""
    root = root.resolve()
    sys.path.insert(0, str(root))
    modules = {}
    for name in ("models.vit", "models.vqvae", "models.proprio"):
        file = name.replace(".", "/") + ".py"
        try:
            modules[name] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "?").split(".")[0]
            if missing in ("models", "distributed_fn"):
                raise ConfigError(
                    f"{root}/{file} cannot be imported: no module '{exc.name}' "
                    f"in the checkout; --dino-wm must point at a complete DINO-WM "
                    f"checkout (the folder holding plan.py and models/)."
                ) from None
            raise ConfigError(
                f"{root}/{file} imports '{missing}', which dinowm's Python lacks; "
                f"install it there: {sys.executable} -m pip install "
                f"{missing}"
            ) from None
        except Exception as exc:  # a checkout's own bug: SyntaxError, ImportError, ...
            raise ConfigError(
                f"{root}/{file} fails to import: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        where = Path(modules[name].__file__ or "").resolve()
        if root not in where.parents:
            raise ConfigError(
                f"'{name}' was imported from {where}, not from {root}; run the "
                f"export where no other package named 'models' is importable."
            )
    return Checkout(root, modules["models.vit"], modules["models.vqvae"], modules["models.proprio"])


def check_supported(doc: dict[str, Any]) -> None:
    """Refuse configurations the public classes cannot express (the raw config.json form)."""
    model = doc.get("model", {})
    if model.get("concat_dim", 1) != 1 or doc.get("num_pred", 1) != 1:
        raise ConfigError(
            f"Only concat_dim=1 and num_pred=1 can be exported (this run: "
            f"concat_dim={model.get('concat_dim')}, num_pred={doc.get('num_pred')})"
        )
    if model.get("decoder", "on") == "off":
        raise ConfigError(
            "This run has no decoder (model.decoder=off); the public planner's "
            "model files carry one: export a run trained with model.decoder=on."
        )


class _Unmoved:
    """Stands in for the attention mask while it is built: `.to(...)` leaves it where it is."""

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.mask


@contextlib.contextmanager
def _mask_stays_on_cpu(vit: Any) -> Iterator[None]:
    """The public Attention moves its mask to 'cuda' when built, which fails without CUDA: keep
    it on the CPU while building (torch.load's map_location moves it where the model goes)."""
    make = getattr(vit, "generate_mask_matrix", None)
    if make is not None:
        vit.generate_mask_matrix = lambda *a, **k: _Unmoved(make(*a, **k))
    try:
        yield
    finally:
        if make is not None:
            vit.generate_mask_matrix = make


def build_public(pub: Checkout, model: WorldModel, cfg_model: Any) -> dict[str, nn.Module]:
    """The public predictor, decoder and embeddings with the sizes of `model`."""
    m = cfg_model
    torch.manual_seed(0)  # the public decoder's (unused) codebook, the same on every export
    # stdout carries the tool's JSON result: the public constructors' prints go to stderr
    with contextlib.redirect_stdout(sys.stderr), _mask_stays_on_cpu(pub.vit):
        parts = {
            "predictor": pub.vit.ViTPredictor(
                num_patches=model.num_patches,
                num_frames=model.num_hist,
                dim=model.emb_dim,
                depth=m.predictor_depth,
                heads=m.predictor_heads,
                dim_head=m.predictor_dim_head,
                mlp_dim=m.predictor_mlp_dim,
                dropout=m.predictor_dropout,
                emb_dropout=0.0,
                pool="mean",
            ),
            "decoder": pub.vqvae.VQVAE(
                channel=m.decoder_channels,
                n_res_block=m.decoder_res_blocks,
                n_res_channel=m.decoder_res_channels,
                emb_dim=model.visual_dim,
                n_embed=2048,
                quantize=False,
            ),
        }
        for name in ("action_encoder", "proprio_encoder"):
            proj = getattr(model, name).proj  # Conv1d (emb, in, 1)
            parts[name] = pub.proprio.ProprioceptiveEmbedding(
                num_frames=1, tubelet_size=1, in_chans=proj.in_channels, emb_dim=proj.out_channels
            )
    for module in parts["predictor"].modules():
        if isinstance(getattr(module, "bias", None), Tensor) and not isinstance(
            module.bias, nn.Parameter
        ):
            module.bias = (
                module.bias.cpu()
            )  # the mask, a plain attribute: on the CPU whatever happened
    return parts


def public_name(part: str, name: str) -> str:
    """The public parameter name of our `part`.`name`."""
    for pattern, replacement in RULES[part]:
        renamed, hits = re.subn("^" + pattern, replacement, name, count=1)
        if hits:
            return renamed
    raise ConfigError(
        f"{part}.{name} has no counterpart in the public model; this dinowm "
        f"version cannot export it."
    )


def copy_weights(part: str, module: nn.Module, ours: dict[str, Tensor]) -> list[str]:
    """Load our state into a public module (each public parameter exactly once, same shape,
    strictly); returns the public buffers kept as built (the unused codebook)."""
    target = module.state_dict()
    kind = type(module).__name__
    assigned: dict[str, str] = {}
    for name, value in ours.items():
        pub = public_name(part, name)
        if pub not in target:
            raise ConfigError(
                f"{part}.{name} maps to {pub}, which the checkout's {kind} lacks; "
                f"its models differ from the public DINO-WM."
            )
        if pub in assigned:
            raise ConfigError(f"{part}: {assigned[pub]} and {name} both map to {pub}.")
        if target[pub].shape != value.shape:
            raise ConfigError(
                f"{part}.{name} is {tuple(value.shape)}, the checkout's {kind}."
                f"{pub} is {tuple(target[pub].shape)}."
            )
        target[pub], assigned[pub] = value, name
    unset = [n for n, _ in module.named_parameters() if n not in assigned]
    if unset:
        raise ConfigError(
            f"the checkout's {kind} has parameters dinowm does not train "
            f"({', '.join(unset[:3])}); its models differ from the public DINO-WM."
        )
    module.load_state_dict(target, strict=True)
    return sorted(set(target) - set(assigned))


@torch.no_grad()
def max_difference(model: WorldModel, parts: dict[str, nn.Module]) -> float:
    """Largest |ours - public| over the embeddings, one prediction and one decoded frame."""
    g = torch.Generator().manual_seed(0)
    t, p = model.num_hist, model.num_patches
    tokens = torch.randn(1, t, p, model.visual_dim, generator=g)  # (1, T, P, D_vis)
    proprio = torch.randn(1, t, model.proprio_encoder.proj.in_channels, generator=g)  # (1, T, 3)
    action = torch.randn(1, t, model.action_encoder.proj.in_channels, generator=g)  # (1, T, 45)
    z = model.encode(tokens, proprio, action, tokens=tokens)  # (1, T, P, D); frames unused
    ours_pred = model.predict(z)
    pub_pred = parts["predictor"](z.flatten(1, 2)).reshape(z.shape)  # (1, T*P, D) in
    last = ours_pred[:, -1:]  # (1, 1, P, D): every decoder weight acts on each frame
    pub_image, _ = parts["decoder"](last[..., : model.visual_dim])  # (1, 3, H, W)
    pairs = [
        (model.proprio_encoder(proprio), parts["proprio_encoder"](proprio)),
        (model.action_encoder(action), parts["action_encoder"](action)),
        (ours_pred, pub_pred),
        (model.decode(last)[:, 0], pub_image),
    ]
    return max(float((a - b).abs().max()) for a, b in pairs)


def _write(out: Path, epoch: int, modules: dict[str, Any], hydra_text: str) -> list[str]:
    """model_<epoch>.pth, model_latest.pth and hydra.yaml, each atomically (temp + rename)."""
    buffer = io.BytesIO()
    torch.save(modules, buffer)
    data = buffer.getvalue()
    folder = out / rundir.CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.sweep_temp_files(folder)  # what a killed export left behind
    written = []
    for which in (epoch, "latest"):
        ckpt.write_atomic(rundir.planner_checkpoint(out, which), data)
        written.append(str(rundir.planner_checkpoint(out, which)))
    ckpt.write_atomic(out / rundir.PLANNER_CONFIG, hydra_text.encode())
    written.append(str(out / rundir.PLANNER_CONFIG))
    ckpt.fsync_dir(folder)
    ckpt.fsync_dir(out)
    return written


def export(
    checkpoint: Path,
    checkout: Path,
    out: Path,
    run_name: str,
    dataset_target: str | None,
    paths: dict[str, str | None],
) -> dict[str, Any]:
    """Verify `checkpoint`, build the public modules from `checkout`, write the model folder."""
    state, manifest = ckpt.load(checkpoint)  # sha256 verified, weights only
    cfg, model = _restored(state)
    parts, diff = _public_parts(checkout, model, cfg, state["model"])
    epoch = int(manifest["epoch"])
    layout = planner_layout(cfg.data.layout, Path(cfg.data.path), cfg.env)
    target = dataset_target or DATASET_TARGETS.get(layout) or default_dataset_target(cfg.env)
    source = {
        "run_id": state["run_id"],
        "run_name": run_name,
        "epoch": epoch,
        "checkpoint": str(checkpoint),
        "sha256": manifest["sha256"],
        "encoder": cfg.model.encoder,
        "dinowm_version": manifest.get("dinowm"),
    }
    text = to_yaml(hydra_config(cfg, state["stats"], layout, target, source, paths))
    written = _write(out, epoch, {"epoch": epoch, **parts}, text)
    warnings = []
    if cfg.encoder_untrained:
        warnings.append(
            f"run {state['run_id']} used the tiny test encoder ({cfg.encoder_dim} "
            f"channels); the planner builds DINOv2 ViT-S/14 from hydra.yaml "
            f"instead, whose 384 channels this predictor was not trained on."
        )
    stats_warning = planner_warning(cfg, state["stats"])
    if stats_warning:
        warnings.append(stats_warning)
    return {
        "written": written,
        "epoch": epoch,
        "run_id": state["run_id"],
        "sha256": manifest["sha256"],
        "max_difference": diff,
        "dataset_target": target,
        "layout": layout,
        "warnings": warnings,
    }


def _restored(state: dict[str, Any]) -> tuple[RunConfig, WorldModel]:
    """The checkpoint's configuration (refused when the public planner cannot load it) and
    its model, in eval mode with the public code's explicit attention."""
    check_supported(state["config"])
    cfg = from_dict(state["config"])
    parts_state = state["model"]
    model = build_model(
        cfg,
        parts_state["proprio_encoder"]["proj.weight"].shape[1],
        parts_state["action_encoder"]["proj.weight"].shape[1],
        load_weights=False,
    )
    load_model_state(model, parts_state)
    model.eval()
    model.predictor.set_attention("explicit")  # the public code's arithmetic, for the check
    if cfg.model.predictor_heads == 1 and cfg.model.predictor_dim_head == model.emb_dim:
        raise ConfigError(
            "A predictor with one head as wide as the latent has no output "
            "projection in the public ViT; it cannot be exported."
        )
    return cfg, model


def _public_parts(
    checkout: Path, model: WorldModel, cfg: RunConfig, parts_state: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """The checkout's modules with the model's weights, and their largest difference from the
    model's predictions (refused beyond TOLERANCE)."""
    pub = import_checkout(checkout)
    parts = build_public(pub, model, cfg.model)
    for name, module in parts.items():
        copy_weights(name, module, parts_state[name])
        module.eval()
    diff = max_difference(model, parts)
    if not diff <= TOLERANCE:
        raise DinowmError(
            f"The checkout's models compute something else than dinowm's "
            f"(largest difference {diff:.2e} > {TOLERANCE:.0e}); its models/ differ "
            f"from the public DINO-WM."
        )
    return parts, diff


def planner_layout(layout: str, data: Path, env: str) -> str:
    """franka, point_maze or wall: the configured layout, else what the folder (or env) shows."""
    if layout != "auto":
        return layout
    if (data / "obses").is_dir() or env in ("point_maze", "wall"):
        return "wall" if env == "wall" else "point_maze"
    return "franka"

# SPDX-License-Identifier: MIT
"""Training hyperparameters and the model architecture of a run, from its recorded config."""

from __future__ import annotations

from typing import Any

from dinowm.export.markdown import Ctx, code, foreign, integer, lr, plain, table
from dinowm.export.record import RunRecord
from dinowm.schema import all_keys

BASE = (
    "training.epochs",
    "training.batch_size",
    "training.grad_accum",
    "micro_batch",
    "seed",
    "training.save_every_x_epoch",
    "training.keep_checkpoints",
    "training.max_steps_per_epoch",
    "training.precision",
    "training.deterministic",
    "training.num_reconstruct_samples",
    "training.decoder_every",
    "training.rollouts",
    "training.rollout_horizon",
)
TEMPORAL = ("frameskip", "num_hist", "num_pred", "num_frames")
EMBEDDING = (
    "model.action_emb_dim",
    "model.proprio_emb_dim",
    "model.num_action_repeat",
    "model.num_proprio_repeat",
)
LEARNING_RATES = (
    "training.encoder_lr",
    "training.predictor_lr",
    "training.decoder_lr",
    "training.action_encoder_lr",
)
ORDER = {name: i for i, name in enumerate(all_keys())}
SHOWN = set(BASE + TEMPORAL + EMBEDDING + LEARNING_RATES) | {
    "env",
    "data.path",
    "data.layout",
    "data.n_rollouts",
    "data.split_ratio",
    "data.split_seed",
    "data.normalize_action",
    "data.num_workers",
}


def source(ctx: Ctx, origin: str | None) -> str:
    """Where a value came from, in words: 'preset demo', 'override', 'resume', ..."""
    if origin is None:
        return ""
    if origin.startswith("preset "):
        return f"{ctx('src_preset')} {foreign(origin.removeprefix('preset '))}"
    return ctx(f"src_{origin}") if f"src_{origin}" in ctx.labels else foreign(origin)


def _value(rec: RunRecord, key: str) -> Any:
    if key == "micro_batch":
        return rec.run.get("micro_batch") or rec.derived("micro_batch")
    if key == "num_frames":
        return rec.derived("num_frames")
    value = rec.values.get(key)
    return None if value is None else foreign(plain(value))


def _rows(ctx: Ctx, rec: RunRecord, keys: tuple[str, ...]) -> list[tuple[str, Any, str]]:
    rows = []
    for key in keys:
        origin = source(ctx, rec.sources.get(key))
        text = ctx(f"k_{key}") + (f" · {origin}" if origin else "")
        rows.append((code(key.rsplit(".", 1)[-1]), _value(rec, key), text))
    return rows


def hyperparameters(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 2. Training hyperparameters: base, temporal, learning rates, embeddings, the rest."""
    head = ["Parameter", ctx("value"), ctx("description")]
    v = rec.values
    encoder = {"dinov2_vits14": "Encoder (DINO)", None: "Encoder"}.get(
        v.get("model.encoder"), f"Encoder ({v.get('model.encoder')})"
    )
    frozen, yes = f"❌ {ctx('frozen')}", f"✅ {ctx('yes')}"
    rates = [
        (encoder, lr(v.get("training.encoder_lr")), frozen),
        ("Predictor (ViT)", lr(v.get("training.predictor_lr")), yes),
        ("Decoder (VQ-VAE)", lr(v.get("training.decoder_lr")), yes),
        ("Action Encoder", lr(v.get("training.action_encoder_lr")), yes),
        ("Proprio Encoder", lr(v.get("training.action_encoder_lr")), yes),
    ]
    emb = rec.derived("emb_dim")
    parts = _emb_parts(rec)
    total = (
        f"**{ctx('total')} emb_dim**",
        f"**{emb}**" if emb is not None else None,
        ctx("emb_total", parts=parts) if parts else ctx("emb_total_short"),
    )
    out = [
        f"## {ctx('h_hyper')}",
        "",
        f"### {ctx('h_base')}",
        "",
        *table(head, _rows(ctx, rec, BASE)),
        "",
        f"### {ctx('h_temporal')}",
        "",
        *table(head, _rows(ctx, rec, TEMPORAL)),
        "",
        f"### {ctx('h_lr')}",
        "",
        *table([ctx("component"), "Learning Rate", ctx("trainable")], rates),
        "",
        ctx("encoder_never_stepped"),
        "",
        f"### {ctx('h_embedding')}",
        "",
        *table(head, [*_rows(ctx, rec, EMBEDDING), total]),
    ]
    return out + _other(ctx, rec)


def _other(ctx: Ctx, rec: RunRecord) -> list[str]:
    """The keys set away from their default that the tables above do not show."""
    other = sorted(
        (k for k in rec.sources if k not in SHOWN and k in rec.values),
        key=lambda k: (ORDER.get(k, len(ORDER)), k),
    )
    if not other:
        return []
    rows = ((code(k), foreign(plain(rec.values[k])), source(ctx, rec.sources[k])) for k in other)
    return [
        "",
        f"### {ctx('h_other')}",
        "",
        *table(["Parameter", ctx("value"), ctx("source")], rows),
    ]


def _emb_parts(rec: RunRecord) -> str | None:
    """'384 + 10 + 10' (or '64 + 10×2 + 10'): encoder + proprio × repeat + action × repeat."""
    dim = rec.derived("encoder_dim")
    if dim is None:
        return None
    v = rec.values

    def times(width: Any, repeat: Any) -> str:
        return f"{width}" if repeat == 1 else f"{width}×{repeat}"

    return (
        f"{dim} + {times(v['model.proprio_emb_dim'], v['model.num_proprio_repeat'])} + "
        f"{times(v['model.action_emb_dim'], v['model.num_action_repeat'])}"
    )


def architecture(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 3. Model architecture with parameter counts from the trainer's start event."""
    out = [
        f"## {ctx('h_arch')}",
        "",
        *table(
            [ctx("component"), ctx("type"), "Details", ctx("parameters")],
            _components(ctx, rec),
            "lllr",
        ),
    ]
    out += _latent_notes(ctx, rec)
    if not (rec.start or {}).get("params"):
        out += ["", f"> {ctx('no_params')}"]
    return out


def _encoder_row(ctx: Ctx, rec: RunRecord) -> tuple[Any, ...]:
    """The frozen encoder: its type, pretrained or not, its parameters."""
    v, params = rec.values, (rec.start or {}).get("params") or {}
    label = rec.run.get("encoder_label") or ""
    if v.get("model.encoder") == "dinov2_vits14":
        enc_type = "DINOv2-ViT-S/14"
    else:
        enc_type = (
            f"tiny ViT (dim {v.get('model.tiny_dim')}, depth {v.get('model.tiny_depth')}"
            f", {v.get('model.tiny_heads')} heads)"
        )
    enc_details = (
        ctx("enc_untrained")
        if "untrained" in label or "random init" in label
        else ctx("enc_pretrained")
    )
    return ("**Encoder**", enc_type, enc_details, integer(params.get("encoder")))


def _components(ctx: Ctx, rec: RunRecord) -> list[tuple[Any, ...]]:
    """A row per component (type, details, parameters) and the trainable total."""
    v, start = rec.values, rec.start or {}
    params, info = start.get("params") or {}, start.get("dataset") or {}
    trainable = ctx("trainable_yes")
    pred = ctx(
        "pred_details",
        depth=v.get("model.predictor_depth"),
        heads=v.get("model.predictor_heads"),
        dim_head=v.get("model.predictor_dim_head"),
        mlp=v.get("model.predictor_mlp_dim"),
        dropout=v.get("model.predictor_dropout"),
    )
    dec = ctx(
        "dec_details",
        channels=v.get("model.decoder_channels"),
        blocks=v.get("model.decoder_res_blocks"),
        res=v.get("model.decoder_res_channels"),
    )
    proprio_in, action_in = info.get("proprio_dim"), info.get("sample_action_dim")
    return [
        _encoder_row(ctx, rec),
        (
            "**Predictor**",
            "Vision Transformer",
            f"{pred}; {trainable}",
            integer(params.get("predictor")),
        ),
        ("**Decoder**", "VQ-VAE", f"{dec}; {trainable}", integer(params.get("decoder"))),
        (
            "**Proprio Encoder**",
            _conv(proprio_in, v.get("model.proprio_emb_dim")),
            (ctx("proprio_details", n=proprio_in) + "; " if proprio_in else "") + trainable,
            integer(params.get("proprio_encoder")),
        ),
        (
            "**Action Encoder**",
            _conv(action_in, v.get("model.action_emb_dim")),
            (
                f"{info['action_dim']}×{v.get('frameskip')} (frameskip); "
                if info.get("action_dim")
                else ""
            )
            + trainable,
            integer(params.get("action_encoder")),
        ),
        (
            f"**{ctx('trainable_total')}**",
            "",
            "",
            f"**{integer(params.get('trainable_total'))}**"
            if params.get("trainable_total") is not None
            else None,
        ),
    ]


def _latent_notes(ctx: Ctx, rec: RunRecord) -> list[str]:
    """The lines under the table: the latent's shape, and DDP's ranks when there are several."""
    v, start = rec.values, rec.start or {}
    out: list[str] = []
    patches, emb = rec.derived("num_patches"), rec.derived("emb_dim")
    if patches is not None:
        out += [
            "",
            ctx(
                "latent_line",
                patches=patches,
                emb=emb,
                hist=v.get("num_hist"),
                pred=v.get("num_pred"),
                size=v.get("model.encoder_img_size"),
            ),
        ]
    world = start.get("world_size") or 1
    if world > 1:  # a replica per rank; the gradients averaged over them every step
        out += [
            "",
            f"DistributedDataParallel: {world} ranks (torchrun), "
            f"{str(start.get('device') or '?').split(':')[0]}; training.batch_size "
            f"{v.get('training.batch_size')} is the global batch.",
        ]
    return out


def _conv(width_in: Any, width_out: Any) -> str:
    """'Conv1d(18→10)'; the input width is known only from the trainer's start event."""
    return f"Conv1d({width_in}→{width_out})" if width_in else f"Conv1d(→{width_out})"

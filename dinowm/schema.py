# SPDX-License-Identifier: MIT
"""The typed configuration of one run: every key, its type, default, range and meaning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def opt(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    min_open: bool = False,
    max_open: bool = False,
    resumable: bool = False,
) -> Any:
    """A config field with its help text and allowed range (`*_open` excludes the bound);
    `resumable` when `dinowm resume` may change it (it shapes neither the model nor the data)."""
    meta = {
        "help": help,
        "min": min,
        "max": max,
        "choices": choices,
        "min_open": min_open,
        "max_open": max_open,
        "resumable": resumable,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """Where the episodes are and how they are split and normalised."""

    path: str = opt("", "dataset folder (franka or point_maze layout); relative to dinowm.toml")
    layout: str = opt("auto", "on-disk layout", choices=("auto", "franka", "point_maze", "wall"))
    synthetic: bool = opt(False, "generate the built-in synthetic dataset at data.path if missing")
    synth_episodes: int = opt(16, "episodes of the synthetic dataset", min=2)
    synth_length: int = opt(80, "frames per synthetic episode", min=2)
    synth_image_size: int = opt(64, "pixels of the synthetic frames", min=8)
    n_rollouts: int = opt(0, "episodes to use, 0 = all", min=0)
    split_ratio: float = opt(
        0.9, "train fraction, split by trajectory", min=0.0, max=1.0, min_open=True, max_open=True
    )
    split_seed: int = opt(42, "seed of the train/val split")
    normalize_action: bool = opt(True, "z-score actions and proprio (statistics: stats_from)")
    stats_from: str = opt(
        "auto",
        "z-score statistics from the train split, or all episodes as "
        "the public loaders; auto: all in reference mode, else train",
        choices=("auto", "train", "all"),
    )
    shuffle: str = opt(
        "auto",
        "a new sample order each epoch, or one fixed seeded order as the "
        "public TrajSlicerDataset; auto: fixed in reference mode, else epoch",
        choices=("auto", "epoch", "fixed"),
    )
    num_workers: int = opt(2, "DataLoader worker processes", min=0, resumable=True)
    cache_features: str = opt(
        "auto",
        "cache the frozen encoder's patch tokens on disk (fp16); "
        "auto: on a GPU when the cache fits cache_max_gib and the free "
        "disk, off on the CPU",
        choices=("auto", "on", "off"),
    )
    cache_max_gib: float = opt(32.0, "disk budget of data.cache_features=auto", min=0.0)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation schedule, as in the user's `training.*` keys."""

    epochs: int = opt(
        100, "target total of epochs (a resume trains up to it)", min=1, resumable=True
    )
    batch_size: int = opt(
        32, "samples per optimiser step (before grad_accum split)", min=1, resumable=True
    )
    grad_accum: int = opt(1, "micro-batches per optimiser step", min=1, resumable=True)
    save_every_x_epoch: int = opt(1, "checkpoint every N epochs", min=1, resumable=True)
    keep_checkpoints: int = opt(
        3, "epoch checkpoints kept besides model_latest.pth", min=1, resumable=True
    )
    num_reconstruct_samples: int = opt(
        6, "frames in the per-epoch reconstruction grid, 0 = off", min=0, resumable=True
    )
    max_steps_per_epoch: int = opt(
        0, "cap on steps per epoch, 0 = the whole split", min=0, resumable=True
    )
    rollouts: int = opt(
        10, "open-loop rollouts per split each epoch (public: 10), 0 = off", min=0, resumable=True
    )
    rollout_horizon: int = opt(
        0,
        "shortest random rollout horizon in frameskip steps, 0 = num_hist + 2 (public)",
        min=0,
        resumable=True,
    )
    decoder_every: int = opt(
        1,
        "train the decoder on every N-th step (1 = every step, as "
        "published); it learns from detached latents, so the predictor "
        "trains the same whatever N",
        min=1,
        resumable=True,
    )
    precision: str = opt(
        "bf16",
        "autocast precision on CUDA (CPU always runs fp32)",
        choices=("fp32", "bf16"),
        resumable=True,
    )
    deterministic: bool = opt(False, "deterministic kernels (bit-identical resumes on CPU)")
    encoder_lr: float = opt(1e-6, "encoder learning rate (frozen: never stepped)", min=0.0)
    predictor_lr: float = opt(5e-4, "predictor learning rate (AdamW)", min=0.0, min_open=True)
    decoder_lr: float = opt(3e-4, "decoder learning rate (Adam)", min=0.0, min_open=True)
    action_encoder_lr: float = opt(
        5e-4, "action and proprio encoder learning rate (AdamW)", min=0.0, min_open=True
    )


@dataclass(frozen=True)
class ModelConfig:
    """Encoder, embedders, predictor and decoder sizes (DINO-WM defaults)."""

    encoder: str = opt(
        "dinov2_vits14",
        "frozen visual encoder; tiny = small, untrained",
        choices=("dinov2_vits14", "tiny"),
    )
    encoder_weights: str = opt("", "dinov2_vits14_pretrain.pth; empty = torch hub cache")
    img_size: int = opt(224, "frame size fed to the model and reconstructed by the decoder", min=16)
    encoder_img_size: int = opt(
        196, "frames are resized to this for the encoder (14 px patches)", min=14
    )
    tiny_dim: int = opt(64, "width of the tiny encoder", min=8)
    tiny_depth: int = opt(2, "blocks of the tiny encoder", min=1)
    tiny_heads: int = opt(4, "heads of the tiny encoder", min=1)
    action_emb_dim: int = opt(10, "action embedding width", min=1)
    proprio_emb_dim: int = opt(10, "proprio embedding width", min=1)
    num_action_repeat: int = opt(1, "times the action embedding is tiled", min=1)
    num_proprio_repeat: int = opt(1, "times the proprio embedding is tiled", min=1)
    concat_dim: int = opt(1, "1 = embeddings concatenated on channels", min=1, max=1)
    predictor_depth: int = opt(6, "predictor blocks", min=1)
    predictor_heads: int = opt(16, "predictor attention heads", min=1)
    predictor_dim_head: int = opt(64, "width of one predictor head", min=1)
    predictor_mlp_dim: int = opt(2048, "predictor MLP hidden width", min=1)
    predictor_dropout: float = opt(0.1, "predictor dropout", min=0.0, max=1.0, max_open=True)
    decoder: str = opt(
        "on",
        "the image decoder; off: planning-only runs without reconstructions or image metrics",
        choices=("on", "off"),
    )
    decoder_channels: int = opt(384, "decoder hidden channels", min=2)
    decoder_res_blocks: int = opt(4, "residual blocks per decoder upsampler", min=0)
    decoder_res_channels: int = opt(128, "decoder residual bottleneck channels", min=1)
    attention: str = opt("sdpa", "predictor attention kernel", choices=("sdpa", "explicit"))


@dataclass(frozen=True)
class WandbConfig:
    """Optional wandb mirror, fed by the supervisor, never by the trainer."""

    mode: str = opt(
        "disabled", "wandb mirror", choices=("disabled", "offline", "online"), resumable=True
    )
    project: str = opt("dino_wm", "wandb project")
    entity: str = opt("", "wandb entity (team or user), empty = default")


@dataclass(frozen=True)
class WatchdogConfig:
    """Stall and crash handling of the supervisor."""

    heartbeat_floor_s: float = opt(
        60.0, "a step may always take this long", min=0.1, resumable=True
    )
    heartbeat_factor: float = opt(
        5.0, "stall threshold = max(floor, factor x p99 step time)", min=1.0, resumable=True
    )
    startup_s: float = opt(600.0, "budget until the first step", min=1.0, resumable=True)
    validation_s: float = opt(900.0, "budget for one validation pass", min=1.0, resumable=True)
    checkpoint_s: float = opt(300.0, "budget for one checkpoint save", min=1.0, resumable=True)
    max_attempts: int = opt(5, "automatic resumes before giving up", min=0, resumable=True)
    kill_grace_s: float = opt(
        10.0, "after a stall: seconds from SIGTERM to SIGKILL", min=0.0, resumable=True
    )
    backoff_s: float = opt(
        10.0, "first wait before an automatic resume (doubles)", min=0.0, resumable=True
    )
    backoff_max_s: float = opt(
        300.0, "longest wait between automatic resumes", min=0.0, resumable=True
    )
    on_crash: str = opt("resume", "after a crash", choices=("resume", "stop"), resumable=True)
    oom: str = opt(
        "halve",
        "after CUDA out of memory: halve batch (x2 grad_accum) or stop",
        choices=("halve", "stop"),
        resumable=True,
    )


@dataclass(frozen=True)
class TelemetryConfig:
    """GPU sampling by the supervisor."""

    interval_s: float = opt(1.0, "seconds between GPU samples", min=0.05, resumable=True)
    raw_retention_s: float = opt(
        3600.0, "raw samples kept this long, then aggregated", min=0.0, resumable=True
    )
    aggregate_s: float = opt(60.0, "bucket width of aggregated samples", min=1.0, resumable=True)


@dataclass(frozen=True)
class ThermalConfig:
    """Pause training while the GPU is too hot."""

    enabled: bool = opt(True, "pause between steps above max_temp_c", resumable=True)
    max_temp_c: float = opt(
        82.0, "pause above this GPU temperature", min=30.0, max=120.0, resumable=True
    )
    resume_temp_c: float = opt(
        75.0, "resume below this GPU temperature", min=20.0, max=120.0, resumable=True
    )
    hold_s: float = opt(10.0, "seconds above max_temp_c before pausing", min=0.0, resumable=True)


@dataclass(frozen=True)
class PerfConfig:
    """Speed settings."""

    mode: str = opt(
        "fast",
        "fast, or reference (the public code's costs, for comparison)",
        choices=("fast", "reference"),
    )
    compile: bool = opt(
        False, "torch.compile the predictor and decoder (fast mode)", resumable=True
    )
    compile_mode: str = opt(
        "default",
        "torch.compile mode; reduce-overhead also captures CUDA graphs of the fixed-shape steps",
        choices=("default", "reduce-overhead", "max-autotune"),
        resumable=True,
    )
    channels_last: bool = opt(True, "channels-last decoder convolutions on CUDA (fast mode)")
    encoder_inference_mode: bool = opt(
        True,
        "run the frozen encoder under torch.inference_mode (fast mode; no_grad otherwise)",
        resumable=True,
    )
    prefetch: bool = opt(
        False,
        "copy the next batch to the GPU on a side stream while this "
        "step computes (fast mode, CUDA; off until measured)",
        resumable=True,
    )


@dataclass(frozen=True)
class DistConfig:
    """Several GPUs of one machine: torchrun ranks under one supervisor."""

    nproc_per_node: int = opt(
        1,
        "training processes, one per GPU (without CUDA: gloo ranks on "
        "the CPU); training.batch_size stays the global batch",
        min=1,
    )
    timeout_s: float = opt(
        180.0,
        "collective timeout: a rank waiting longer fails with torch's own message; keep it "
        "well above watchdog.heartbeat_floor_s, so that the supervisor names a frozen rank "
        "first",
        min=1.0,
    )


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved, validated run configuration."""

    env: str = opt("franka_cube_stack", "environment / dataset name")
    seed: int = opt(0, "training seed")
    frameskip: int = opt(5, "keep every N-th frame", min=1)
    num_hist: int = opt(3, "context frames", min=1)
    num_pred: int = opt(1, "predicted frames (only 1 is supported)", min=1, max=1)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    dist: DistConfig = field(default_factory=DistConfig)

    @property
    def num_frames(self) -> int:
        """Frames per training sample (context + predicted)."""
        return self.num_hist + self.num_pred

    @property
    def slice_span(self) -> int:
        """Raw timesteps one sample spans: a start s needs s + span <= T."""
        return self.num_frames * self.frameskip

    @property
    def encoder_dim(self) -> int:
        """Channels of the encoder's patch tokens."""
        return 384 if self.model.encoder == "dinov2_vits14" else self.model.tiny_dim

    @property
    def num_patches(self) -> int:
        """Patch tokens per frame (14 px patches)."""
        return (self.model.encoder_img_size // 14) ** 2

    @property
    def emb_dim(self) -> int:
        """Latent width: visual + proprio x repeat + action x repeat (404 for the user's run)."""
        m = self.model
        return (
            self.encoder_dim
            + m.proprio_emb_dim * m.num_proprio_repeat
            + m.action_emb_dim * m.num_action_repeat
        )

    @property
    def micro_batch(self) -> int:
        """Samples per forward pass of one rank (the global batch over ranks and accumulation)."""
        return max(
            1, self.training.batch_size // (self.training.grad_accum * self.dist.nproc_per_node)
        )

    @property
    def encoder_untrained(self) -> bool:
        """True when the encoder is a randomly initialised test encoder."""
        return self.model.encoder == "tiny"


DERIVED = ("num_frames", "slice_span", "encoder_dim", "num_patches", "emb_dim", "micro_batch")


@dataclass(frozen=True)
class Key:
    """One flat configuration key such as `training.batch_size`."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple[str, ...] | None
    min_open: bool
    max_open: bool
    resumable: bool  # `dinowm resume RUN key=value` may change it


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _fields(cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def _key(name: str, f: dataclasses.Field) -> Key:
    m = f.metadata
    return Key(
        name,
        _TYPES[f.type] if isinstance(f.type, str) else f.type,
        f.default,
        m["help"],
        m["min"],
        m["max"],
        m["choices"],
        m["min_open"],
        m["max_open"],
        m["resumable"],
    )


def _section_classes() -> dict[str, type]:
    return {
        "data": DataConfig,
        "training": TrainingConfig,
        "model": ModelConfig,
        "wandb": WandbConfig,
        "watchdog": WatchdogConfig,
        "telemetry": TelemetryConfig,
        "thermal": ThermalConfig,
        "perf": PerfConfig,
        "dist": DistConfig,
    }


SECTIONS: dict[str, type] = _section_classes()


def all_keys() -> dict[str, Key]:
    """Every flat key of RunConfig, in schema order."""
    keys: dict[str, Key] = {}
    for f in _fields(RunConfig):
        if f.name in SECTIONS:
            for sf in _fields(SECTIONS[f.name]):
                keys[f"{f.name}.{sf.name}"] = _key(f"{f.name}.{sf.name}", sf)
        else:
            keys[f.name] = _key(f.name, f)
    return keys

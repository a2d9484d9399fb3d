# SPDX-License-Identifier: MIT
"""Which keys a resume may change: the schema's `resumable` flag, beside each key."""

from __future__ import annotations

from dinowm.schema import all_keys

# The prefix list dinowm.runs kept before the flag moved into the schema (issue 21).
BEFORE = ("training.epochs", "training.batch_size", "training.grad_accum",
          "training.save_every_x_epoch", "training.keep_checkpoints",
          "training.num_reconstruct_samples", "training.max_steps_per_epoch",
          "training.rollout", "training.precision", "data.num_workers",
          "watchdog.", "telemetry.", "thermal.", "wandb.mode", "perf.compile",
          "training.decoder_every", "perf.prefetch", "perf.encoder_inference_mode")


def test_the_resumable_keys_are_the_ones_the_prefix_list_named() -> None:
    keys = all_keys()
    assert {name for name, key in keys.items() if key.resumable} == \
        {name for name in keys if name.startswith(BEFORE)}


def test_what_shapes_the_model_or_the_data_is_not_resumable() -> None:
    keys = all_keys()
    for name in ("model.predictor_depth", "frameskip", "data.path", "perf.mode",
                 "training.predictor_lr", "dist.nproc_per_node", "wandb.project"):
        assert not keys[name].resumable, name

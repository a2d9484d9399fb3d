# SPDX-License-Identifier: MIT
"""What perf.mode changes, decided once: the fast path, or the public code's costs and data
choices (reference)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from dinowm.data.datasets import ReferenceDataset, SliceDataset
from dinowm.data.sampling import public_order
from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train.step import Schedule

TRAIN_DECODE_EVERY = 10  # fast mode decodes predicted frames (a metric only) every 10th step


@dataclass(frozen=True)
class Mode:
    """The choices perf.mode (and the perf.* settings it allows) make for the loop."""

    reference: bool  # perf.mode=reference: the public DINO-WM code's costs, for comparison
    precision: str  # autocast precision: training.precision, or fp32 in reference mode
    decode_every: int  # decode the predicted frames on every N-th training step
    decoder_every: int  # train the decoder on every N-th step (training.decoder_every)
    keep_pred_graph: bool  # keep that decode's unused autograd graph alive, as the public code
    cache_features: str  # read the frozen encoder's tokens from an on-disk cache: auto/on/off
    compile: bool  # torch.compile the predictor and decoder
    compile_mode: str  # torch.compile's mode (reduce-overhead: CUDA graphs)
    encoder_inference_mode: bool  # the frozen encoder under inference_mode, not no_grad
    prefetch: bool  # host-to-device copies of the next batch on a side stream (CUDA)
    channels_last: bool  # channels-last decoder convolutions (applied on CUDA only)
    stats_from: str  # "train" or "all": the episodes of the normalisation statistics
    shuffle: str  # "epoch" (a new order each epoch) or "fixed" (the public code's one order)

    @classmethod
    def of(cls, cfg: RunConfig) -> Mode:
        """The mode of a run; reference mode turns every fast-path setting off and makes the
        public code's data choices where data.stats_from / data.shuffle say auto."""
        reference = cfg.perf.mode == "reference"
        fast = not reference
        d = cfg.data
        return cls(
            reference=reference,
            precision="fp32" if reference else cfg.training.precision,
            decode_every=1 if reference else TRAIN_DECODE_EVERY,
            decoder_every=1 if reference else cfg.training.decoder_every,
            keep_pred_graph=reference,
            cache_features=cfg.data.cache_features if fast else "off",
            compile=fast and cfg.perf.compile,
            compile_mode=cfg.perf.compile_mode,
            encoder_inference_mode=fast and cfg.perf.encoder_inference_mode,
            prefetch=fast and cfg.perf.prefetch,
            channels_last=fast and cfg.perf.channels_last,
            stats_from=d.stats_from
            if d.stats_from != "auto"
            else ("all" if reference else "train"),
            shuffle=d.shuffle if d.shuffle != "auto" else ("fixed" if reference else "epoch"),
        )

    def prepare(self, model: WorldModel, device: torch.device) -> None:
        """Set the model up for this mode, before its optimisers are built."""
        if self.reference:
            model.predictor.set_attention("explicit")
        model.encoder_inference_mode = self.encoder_inference_mode
        decoder = model.decoder  # None with model.decoder=off
        if self.channels_last and device.type == "cuda" and decoder is not None:
            decoder.to_channels_last()  # CPU runs keep their exact kernels
        if self.compile:  # after the layout change, so the compiled graphs see it
            model.predictor.compile(mode=self.compile_mode)  # in place: the same state_dict keys
            if decoder is not None:
                decoder.compile(mode=self.compile_mode)

    def schedule(self, model: WorldModel) -> Schedule:
        """Which steps of this model decode predictions and train the decoder."""
        return Schedule(
            has_decoder=model.has_decoder,
            decode_every=self.decode_every,
            decoder_every=self.decoder_every,
            keep_pred_graph=self.keep_pred_graph,
        )

    def dataset(self, ds: SliceDataset, img_size: int) -> Dataset:
        """Reference mode transforms each sample's whole episode, as the public loader."""
        return ReferenceDataset(ds, img_size) if self.reference else ds

    def order(self, ds: SliceDataset, seed: int) -> torch.Tensor | None:
        """The one training order of every epoch (shuffle=fixed: the public code's), or None:
        the sampler draws a new permutation each epoch."""
        return public_order(ds, seed) if self.shuffle == "fixed" else None

    def validation_grad(self) -> contextlib.AbstractContextManager:
        """no_grad, or autograd on in reference mode, as the public code validates."""
        return torch.enable_grad() if self.reference else torch.no_grad()

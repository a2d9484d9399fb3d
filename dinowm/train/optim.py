# SPDX-License-Identifier: MIT
"""The optimisers: torch's AdamW and Adam, the same arithmetic, without torch._dynamo.

torch marks its optimisers' methods (step, zero_grad, state_dict, load_state_dict,
add_param_group) as not to be compiled, and the mark imports `torch._dynamo` on their first
call: about 1.7 s of CPU and a few hundred modules in every one-rank trainer process (DDP
imports it for its own use), though dinowm compiles only the predictor's and decoder's
forward (`training.compile`) and never a function that calls an optimiser, where the mark
would act. `Eager` calls the methods beneath the mark: the same code on the same tensors (the
identity check of bench/identity.py holds bit for bit), with torch's step hooks and profiler
label kept (torch wraps this step as it wraps its own). Only the wrappers named in `_MARKS`
are looked beneath; where torch's wrappers change, the methods are torch's own, as they are
without this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch._compile
from torch.optim import optimizer as _optimizer

from dinowm.model.world import WorldModel
from dinowm.schema import RunConfig
from dinowm.train.step import Optimizers


def _marks() -> frozenset[object]:
    """The code objects of torch's wrappers that carry no arithmetic of the optimiser: the
    not-to-be-compiled mark, the step's grad mode (whose compile-only graph breaks import
    dynamo), and the step's hook runner."""

    def probe() -> None:
        return None

    wrappers = [
        lambda: torch._compile._disable_dynamo(probe),
        lambda: _optimizer._use_grad_for_differentiable(probe),
        lambda: torch.optim.Optimizer.profile_hook_step(probe),
    ]
    codes = []
    for wrap in wrappers:
        try:
            codes.append(wrap().__code__)
        except (AttributeError, TypeError):  # a torch without this wrapper
            continue
    return frozenset(codes)


_MARKS = _marks()


@functools.cache
def beneath(method: Callable[..., Any]) -> Callable[..., Any]:
    """The function beneath torch's marks on `method`; `method` itself where anything else
    wraps it."""
    inner = method
    while getattr(inner, "__code__", None) in _MARKS and hasattr(inner, "__wrapped__"):
        inner = inner.__wrapped__
    return inner


class Eager(torch.optim.Optimizer):
    """An optimiser's methods called beneath torch's marks (mixed in before AdamW or Adam)."""

    def step(self, closure: Callable[[], float] | None = None) -> Any:
        # as torch's grad-mode wrapper does for an optimiser that is not differentiable
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return _call(self, "step", closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _call(self, "zero_grad", set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _call(self, "state_dict")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _call(self, "load_state_dict", state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _call(self, "add_param_group", param_group)


def _call(opt: Eager, name: str, *args: Any) -> Any:
    """torch's method `name` of the optimiser's torch class, beneath its marks."""
    torch_class = type(opt).__mro__[type(opt).__mro__.index(Eager) + 1]
    return beneath(getattr(torch_class, name))(opt, *args)


class AdamW(Eager, torch.optim.AdamW):
    """torch.optim.AdamW without torch._dynamo."""


class Adam(Eager, torch.optim.Adam):
    """torch.optim.Adam without torch._dynamo."""


def build_optimizers(model: WorldModel, cfg: RunConfig, device: torch.device) -> Optimizers:
    """AdamW predictor, Adam decoder (when the model has one), AdamW action+proprio encoders
    (the encoder is frozen)."""
    t = cfg.training
    groups = model.trainable_parameter_groups()
    fused: dict[str, Any] = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizers = {
        "predictor": AdamW(groups["predictor"], lr=t.predictor_lr, **fused),
        "decoder": Adam(groups["decoder"], lr=t.decoder_lr, **fused)
        if "decoder" in groups
        else None,
        "action_proprio_encoders": AdamW(
            groups["action_proprio_encoders"], lr=t.action_encoder_lr, **fused
        ),
    }
    return {name: opt for name, opt in optimizers.items() if opt is not None}

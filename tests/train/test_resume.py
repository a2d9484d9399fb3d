# SPDX-License-Identifier: MIT
"""TrainState across a restart: the checkpoint save() writes, what restore() gives back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dinowm.errors import ConfigError
from dinowm.train import checkpoint as ckpt
from dinowm.train.optim import build_optimizers
from dinowm.train.dist import Dist
from dinowm.train.state import Accum, TrainState
from dinowm.train.resume import match_layouts, restore, save
from tests.support.trainer import tiny_model

# Checkpoint format 1: what every checkpoint ever written holds (old ones must keep loading).
FORMAT_1_KEYS = {"format", "run_id", "config", "epoch", "samples_done", "step", "accum", "model",
                 "optim", "rng", "stats"}


def _parts(tiny_run, tmp_path: Path):
    run_dir = tiny_run("state", [])
    cfg, model, _, _, stats, _ = tiny_model(run_dir, tmp_path / "data")
    optimizers = build_optimizers(model, cfg, torch.device("cpu"))
    fired: list[dict] = []
    rt = SimpleNamespace(run_dir=run_dir, run_id="state", checkpoint=lambda **f: fired.append(f),
                         dist=Dist())
    return rt, cfg, model, optimizers, stats, fired


def test_save_writes_format_1_and_restore_gives_the_state_back(tiny_run, tmp_path: Path) -> None:
    rt, cfg, model, optimizers, stats, fired = _parts(tiny_run, tmp_path)
    accum = Accum()
    accum.add({"loss": torch.tensor(0.5), "image": torch.zeros(2)}, 8)
    accum.steps, accum.seconds = 1, 2.5
    state = TrainState(epoch=2, step=7, samples=8, accum=accum)
    save(rt, cfg, model, optimizers, stats, state.checkpoint(), kind="latest")
    folder = rt.run_dir / "checkpoints"
    loaded = ckpt.load_latest(folder)
    assert set(loaded.state) == FORMAT_1_KEYS and loaded.state["format"] == 1
    assert (loaded.manifest["epoch"], loaded.manifest["next_epoch"]) == (2, 2)
    assert fired[0]["kind"] == "latest" and fired[0]["path"] == str(folder / ckpt.LATEST)
    restore(loaded, "state", model, optimizers)
    back = TrainState.from_checkpoint(loaded.state)
    assert (back.epoch, back.step, back.samples) == (2, 7, 8)
    assert back.accum.state() == accum.state() and back.accum.means("train") == {"train_loss": 0.5}
    state.next_epoch()
    save(rt, cfg, model, optimizers, stats, state.checkpoint(), kind="epoch")
    assert (folder / "epoch_0002.pth").exists() and fired[1]["epoch"] == 2
    assert (state.epoch, state.samples, state.accum.steps) == (3, 0, 0)
    with pytest.raises(ConfigError, match="does not fit this run.*belongs to run state"):
        restore(ckpt.load_latest(folder), "another", model, optimizers)


def test_optimiser_states_take_their_parameters_layout() -> None:
    # Fused Adam pairs parameter and state elements in memory order, so a state saved in the
    # other layout (perf.channels_last switched between attempts) must be re-laid on load.
    def adam(p: torch.nn.Parameter) -> torch.optim.Adam:
        return torch.optim.Adam([p], lr=0.1, fused=True)

    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, 5, 5, generator=gen) for _ in range(2)]
    nhwc = torch.randn(4, 3, 5, 5, generator=gen).contiguous(memory_format=torch.channels_last)
    straight = torch.nn.Parameter(nhwc.clone())
    opt = adam(straight)
    for g in grads:
        straight.grad = g.contiguous(memory_format=torch.channels_last)
        opt.step()
    resumed = torch.nn.Parameter(nhwc.clone())
    opt = adam(resumed)
    resumed.grad = grads[0].contiguous(memory_format=torch.channels_last)
    opt.step()
    saved = opt.state_dict()
    for per_param in saved["state"].values():  # as saved by a run without channels_last
        per_param.update({k: v.contiguous() for k, v in per_param.items() if v.dim() == 4})
    opt = adam(resumed)
    opt.load_state_dict(saved)
    match_layouts(opt)
    assert all(v.stride() == resumed.stride() for v in opt.state[resumed].values() if v.dim())
    resumed.grad = grads[1].contiguous(memory_format=torch.channels_last)
    opt.step()
    torch.testing.assert_close(resumed.detach(), straight.detach(), rtol=0, atol=1e-6)

"""TrainState across a restart: what restore() gives back."""

from __future__ import annotations

import torch

from dinowm.train.state import match_layouts


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

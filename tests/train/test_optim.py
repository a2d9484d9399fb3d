# SPDX-License-Identifier: MIT
"""dinowm's optimisers are torch's AdamW and Adam beneath torch's not-to-be-compiled marks: the
same numbers bit for bit, the same state dicts, torch's step hooks still called (the trainer
process that imports no torch._dynamo is checked in test_step.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from dinowm.train import optim


def _train(adamw: type, adam: type, foreach: bool) -> tuple[list[torch.Tensor], dict, dict]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.GELU(), torch.nn.Linear(12, 3))
    first = adamw(net[0].parameters(), lr=1e-2, weight_decay=0.05, foreach=foreach)
    last = adam(net[2].parameters(), lr=3e-3, foreach=foreach)
    for step in range(12):
        first.zero_grad(set_to_none=step % 2 == 0)
        last.zero_grad()
        net(torch.randn(5, 6)).pow(2).mean().backward()
        first.step()
        if step % 3 == 0:  # as the decoder's Adam steps only when it trained
            last.step()
    return [p.detach().clone() for p in net.parameters()], first.state_dict(), last.state_dict()


@pytest.mark.parametrize("foreach", [True, False])
def test_the_same_numbers_and_state_as_torchs_own(foreach: bool) -> None:
    ours = _train(optim.AdamW, optim.Adam, foreach)
    theirs = _train(torch.optim.AdamW, torch.optim.Adam, foreach)
    for a, b in zip(ours[0], theirs[0], strict=True):
        assert torch.equal(a, b)
    for mine, torchs in zip(ours[1:], theirs[1:], strict=True):
        assert mine["param_groups"] == torchs["param_groups"]
        for key, state in mine["state"].items():
            assert state.keys() == torchs["state"][key].keys()
            assert all(torch.equal(state[k], torchs["state"][key][k]) for k in state)
    assert torch.is_grad_enabled()  # the step's grad mode restored


def test_a_state_dict_loads_across_both_and_hooks_still_run() -> None:
    state = copy.deepcopy(_train(torch.optim.AdamW, torch.optim.Adam, True)[1])
    param = torch.nn.Parameter(torch.zeros(12, 6))
    bias = torch.nn.Parameter(torch.zeros(12))
    opt = optim.AdamW([param, bias], lr=1e-2, weight_decay=0.05, foreach=True)
    opt.load_state_dict(state)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    before = int(state["state"][0]["step"])  # torch loads the step tensor itself, not a copy
    seen: list[str] = []
    opt.register_step_pre_hook(lambda *_: seen.append("pre"))
    opt.register_step_post_hook(lambda *_: seen.append("post"))
    param.grad, bias.grad = torch.ones_like(param), torch.ones_like(bias)
    opt.step()
    assert seen == ["pre", "post"]
    assert int(opt.state_dict()["state"][0]["step"]) == before + 1


def test_beneath_stops_at_a_wrapper_it_does_not_know() -> None:
    def raw(x: int) -> int:
        return x

    def other(x: int) -> int:  # a wrapper with behaviour of its own
        return raw(x) + 1

    other.__wrapped__ = raw  # type: ignore[attr-defined]
    assert optim.beneath(other) is other
    marked = torch._compile._disable_dynamo(raw)
    assert optim.beneath(marked) is raw

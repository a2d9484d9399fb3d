# SPDX-License-Identifier: MIT
"""The fault plan's rank and attempt qualifiers."""

from __future__ import annotations

import pytest

from dinowm import faults


@pytest.mark.parametrize("rank, attempt, expected", [
    ("0", "1", [("global_step", 0, "sleep=2"), ("step", 3, "oom")]),
    ("1", "1", [("global_step", 0, "sleep=2"), ("step", 5, "hang")]),
    ("0", "2", [("step", 3, "oom")]),
    ("1", "2", [("step", 5, "hang")]),
])
def test_a_fault_is_planned_only_for_its_rank_and_attempt(monkeypatch, rank, attempt, expected):
    monkeypatch.setenv("DINOWM_FAULT", "global_step:*:sleep=2#1, step:3:oom@0, step:5:hang@1")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("DINOWM_ATTEMPT", attempt)
    assert faults._parse() == expected


def test_without_the_supervisors_variables_a_process_is_rank_0_in_attempt_1(monkeypatch):
    monkeypatch.setenv("DINOWM_FAULT", "step:1:raise#1,step:2:raise#2,step:3:raise@1")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("DINOWM_ATTEMPT", raising=False)
    assert faults._parse() == [("step", 1, "raise")]

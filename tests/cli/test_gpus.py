# SPDX-License-Identifier: MIT
"""`dinowm run --gpus N|auto`: ranks from the visible GPUs, refused in one line without them."""

from __future__ import annotations

import sys

import pytest

from dinowm.errors import ConfigError
from dinowm.runs import gpu_ranks
from tests.support.nvml_fake import UUIDS, FakeGPU, fake_pynvml


def test_ranks_follow_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([FakeGPU(u) for u in UUIDS[:2]]))
    assert gpu_ranks("auto", env={}) == 2
    assert gpu_ranks("1", env={}) == 1
    assert gpu_ranks("auto", env={"CUDA_VISIBLE_DEVICES": "1"}) == 1
    with pytest.raises(ConfigError, match=r"--gpus 3: only 2 GPUs visible"):
        gpu_ranks("3", env={})
    with pytest.raises(ConfigError, match="give a number of GPUs"):
        gpu_ranks("two", env={})


def test_no_gpu_is_said_in_one_line(cli, project_dir) -> None:
    out = cli("run", "--preset", "demo", "--gpus", "2", cwd=project_dir)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: --gpus 2: no GPU is visible on this machine (NVML: ")
    assert "dist.nproc_per_node=N trains N gloo ranks" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (project_dir / "outputs").exists()  # nothing created

# SPDX-License-Identifier: MIT
"""A card's dense BF16 peak by its name, and the memory cap: its fraction, the trainer's
DINOWM_MEMORY_CAP_GIB (ignored on the CPU, refused when it is not a number), and on CUDA an
allocation over the cap failing."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dinowm.errors import ConfigError
from dinowm.train.device import MEMORY_CAP_ENV, cap_fraction, memory_cap_from_env
from dinowm.perf.gpus import peak_bf16_tflops
from tests.support.trainer import events, run_trainer

GIB = 2**30


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA L40S", 362.0),
    ("NVIDIA L4", 121.0), ("NVIDIA GeForce RTX 4090", 165.0),
    ("NVIDIA GeForce RTX 3090", 71.0), ("NVIDIA RTX A4000", 76.7), ("NVIDIA RTX A6000", 154.8),
    # other cards whose names contain a listed one: no peak rather than a wrong one
    ("NVIDIA L40", None), ("NVIDIA GeForce RTX 3090 Ti", None), ("NVIDIA RTX A1000", None),
    ("NVIDIA H200 NVL", None), ("NVIDIA H100 NVL", None), ("Tesla T4", None),
])
def test_a_card_s_peak_is_found_by_its_cuda_name(name: str, peak: float | None) -> None:
    found = peak_bf16_tflops(name)
    assert (found[1] if found else None) == peak


def test_the_cap_is_its_share_of_the_card_and_at_most_all_of_it() -> None:
    assert cap_fraction(16, 140 * GIB) == pytest.approx(16 / 140)
    assert cap_fraction(16, 16 * GIB) == 1.0
    assert cap_fraction(24, 16 * GIB) == 1.0  # a cap above the card caps nothing


def test_the_env_cap_is_ignored_on_the_cpu_with_a_log_line() -> None:
    lines: list[str] = []
    cpu = torch.device("cpu")
    assert memory_cap_from_env(cpu, lines.append, env={}) is None and lines == []
    assert memory_cap_from_env(cpu, lines.append, env={MEMORY_CAP_ENV: "16"}) is None
    assert lines == [f"{MEMORY_CAP_ENV}=16 ignored: it caps CUDA memory and this process "
                     f"trains on cpu"]


@pytest.mark.parametrize("raw", ["sixteen", "0", "-4", "inf", "nan"])
def test_an_env_cap_that_is_not_a_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{MEMORY_CAP_ENV}='{raw}' is not a positive number "
                                          f"of GiB; give e.g. {MEMORY_CAP_ENV}=16"):
        memory_cap_from_env(torch.device("cpu"), print, env={MEMORY_CAP_ENV: raw})


@pytest.mark.extended
def test_the_trainer_logs_the_ignored_cap_and_refuses_a_bad_one(tiny_run) -> None:
    run_dir = tiny_run("capped", ["training.epochs=1", "training.max_steps_per_epoch=2",
                                  "training.rollouts=0"])
    out = run_trainer(run_dir, env={MEMORY_CAP_ENV: "16"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{MEMORY_CAP_ENV}=16 ignored: it caps CUDA memory" in out.stdout
    assert events(run_dir)[-1]["type"] == "end"
    bad = tiny_run("badcap", [])
    out = run_trainer(bad, env={MEMORY_CAP_ENV: "16GB"})
    assert out.returncode == 2 and f"{MEMORY_CAP_ENV}='16GB' is not a positive number" in \
        out.stderr
    assert events(bad)[-1]["kind"] == "config"


CAPPED = """
import torch
from dinowm.train.gpus import cap_memory
device = torch.device("cuda")
cap_memory(1.0, device)
small = torch.empty(512 * 2**20, dtype=torch.uint8, device=device)  # 0.5 GiB: fits
try:
    torch.empty(2 * 2**30, dtype=torch.uint8, device=device)  # 2 GiB: over the cap
except torch.cuda.OutOfMemoryError:
    print("capped")
"""


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs CUDA: the cap limits the CUDA caching allocator")
def test_an_allocation_over_the_cap_runs_out_of_memory() -> None:
    out = subprocess.run([sys.executable, "-c", CAPPED], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "capped", out.stderr[-2000:]

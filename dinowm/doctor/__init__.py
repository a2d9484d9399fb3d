# SPDX-License-Identifier: MIT
"""`dinowm doctor`: what can break a run on this machine, one check a row.

Each check is a function of injected facts (paths, the environment, an NVML module, free-space
readers) so that a test can provoke it; `diagnose` gathers the real ones and runs them all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from dinowm.alerts.settings import for_project as alert_settings
from dinowm.config import Project, Resolved
from dinowm.doctor import gpu, mirror, project, space, torchenv
from dinowm.doctor.check import FAIL, SKIPPED, Check, failed
from dinowm.errors import DinowmError
from dinowm.trials import check_dataset_files

__all__ = ["Check", "Machine", "diagnose", "failed"]
ROOM = ("GPU temperature", "/dev/shm", "disk", "DINOv2 weights", "wandb")  # need a preset


@dataclass
class Machine:
    """Where the facts come from; the defaults read this machine."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    python: str = sys.executable  # the trainer's interpreter
    nvml: ModuleType | None = None  # pynvml, imported when None
    shm: Path = Path("/dev/shm")
    free_bytes: space.FreeBytes = space.free_bytes
    validate: project.Validate = check_dataset_files
    reach: mirror.Reach = mirror.reach
    weights_sha256: str | None = None


def diagnose(
    config: str | None = None,
    preset: str | None = None,
    machine: Machine | None = None,
    cwd: Path | None = None,
) -> list[Check]:
    """Every check, in the order a run meets them: environment, GPU, project, room."""
    m = machine or Machine()
    facts = torchenv.probe(m.python, m.env)
    nvml = gpu.read_nvml(m.nvml)
    checks = [
        torchenv.check_location(facts),
        torchenv.check_versions(facts),
        gpu.check_cuda(facts, nvml),
        gpu.check_nvml(nvml),
    ]
    config_check, proj, resolved = _check_config(config, cwd)
    name = preset or (proj.default_preset if proj else None)
    chosen = resolved.get(name) if name else None
    if proj is not None and name and name not in proj.presets and config_check.status != FAIL:
        config_check = Check(
            config_check.name,
            FAIL,
            f"Unknown preset '{name}' in {proj.config_path}",
            "'dinowm presets' lists them",
        )
    if chosen is None or proj is None or name is None:
        why = "dinowm.toml is not valid" if proj is None else f"preset {name} does not resolve"
        return [
            *checks,
            *(Check(c, SKIPPED, why) for c in ROOM),
            config_check,
            Check("dataset", SKIPPED, why),
        ]
    cfg = chosen.config
    return [
        *checks,
        gpu.check_thermal(nvml, cfg, name),
        space.check_shm(cfg, m.shm, m.free_bytes, gpu=bool(nvml.get("gpus"))),
        space.check_disk(cfg, proj.outputs, m.free_bytes),
        project.check_weights(resolved, name, m.env, m.weights_sha256),
        mirror.check_wandb(cfg, name, m.env, m.reach),
        config_check,
        project.check_dataset(cfg, name, m.validate),
    ]


def _check_config(
    config: str | None, cwd: Path | None
) -> tuple[Check, Project | None, dict[str, Resolved]]:
    """dinowm.toml's check, its [alerts] table included (the config no longer checks it)."""
    check, proj, resolved = project.check_config(config, cwd)
    if proj is None:
        return check, proj, resolved
    try:
        alert_settings(proj)
    except DinowmError as exc:
        return Check(check.name, FAIL, str(exc), "fix it as the message says"), None, {}
    return check, proj, resolved

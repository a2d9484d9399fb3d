# SPDX-License-Identifier: MIT
"""The project's side: dinowm.toml and its presets, the dataset, the DINOv2 weights file."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from dinowm.config import (
    DINOV2_WEIGHTS_URL,
    Project,
    Resolved,
    dinov2_weights_path,
    load_project,
    resolve,
)
from dinowm.doctor.check import FAIL, OK, SKIPPED, WARN, Check
from dinowm.errors import DinowmError
from dinowm.formats import fmt_bytes
from dinowm.schema import RunConfig

# The official file and where it is published (the trainer's dinowm/train/encoder.py names the
# same; a test keeps the two equal). Meta publishes no checksum for it, and dinowm records none:
# the user pins the hash of a copy they trust (--weights-sha256 or DINOWM_WEIGHTS_SHA256).
PIN_ENV = "DINOWM_WEIGHTS_SHA256"

Validate = Callable[[RunConfig], list[str]]


def check_config(
    config: str | None, cwd: Path | None = None
) -> tuple[Check, Project | None, dict[str, Resolved]]:
    """9. dinowm.toml loads and every preset resolves; the first error's one line."""
    name = "dinowm.toml"
    try:
        project = load_project(config, cwd)
    except DinowmError as exc:
        return (
            Check(
                name,
                FAIL,
                str(exc),
                "fix it as the message says ('dinowm init' writes a fresh one)",
            ),
            None,
            {},
        )
    resolved: dict[str, Resolved] = {}
    errors = []
    for preset in sorted(project.presets) or [project.default_preset]:
        try:
            resolved[preset] = resolve(project, preset)
        except DinowmError as exc:
            errors.append(str(exc))
    if project.default_preset not in project.presets:
        errors.insert(
            0,
            f"default_preset '{project.default_preset}' in [project] of "
            f"{project.config_path} is not a preset",
        )
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return (
            Check(
                name,
                FAIL,
                errors[0] + more,
                "fix that key in dinowm.toml; 'dinowm config --preset NAME' shows the rest",
            ),
            project,
            resolved,
        )
    return (
        Check(
            name,
            OK,
            f"{project.config_path}: {len(resolved)} presets resolve "
            f"(default {project.default_preset})",
        ),
        project,
        resolved,
    )


def check_dataset(cfg: RunConfig, preset: str, validate: Validate) -> Check:
    """10. The preset's dataset, by the trainer's own check (in a child process)."""
    name = "dataset"
    d = cfg.data
    if d.synthetic:
        state = "present" if os.path.isdir(d.path) else "generated on first run"
        return Check(name, OK, f"synthetic dataset of preset {preset} at {d.path} ({state})")
    if not d.path:
        return Check(
            name,
            FAIL,
            f"data.path of preset {preset} is empty",
            f"set data.path in [presets.{preset}.data] of dinowm.toml, or run with "
            f"data.path=/path/to/dataset",
        )
    if not os.path.isdir(d.path):  # False, not an error, for a name too long for the disk
        return Check(
            name,
            FAIL,
            f"data.path={d.path} of preset {preset} does not exist",
            f"point data.path in [presets.{preset}.data] at the dataset folder",
        )
    try:
        warnings = validate(cfg)
    except DinowmError as exc:
        return Check(
            name, FAIL, f"{d.path}: {exc}", f"dinowm data check {d.path} lists every problem"
        )
    if warnings:
        return Check(
            name,
            WARN,
            f"{d.path}: {warnings[0]}"
            + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""),
            f"dinowm data check {d.path} lists every warning",
        )
    return Check(name, OK, f"{d.path} passes the trainer's check (preset {preset})")


def weights_path(cfg: RunConfig, env: Mapping[str, str]) -> Path:
    """The file the trainer loads: model.encoder_weights, else the torch hub cache."""
    return dinov2_weights_path(cfg.model.encoder_weights, env)


def sha256(path: Path) -> str:
    """The file's sha256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights(
    resolved: Mapping[str, Resolved], default: str, env: Mapping[str, str], pin: str | None = None
) -> Check:
    """7. The DINOv2 weights of every preset that needs them: present, whole, hash pinned."""
    name = "DINOv2 weights"
    users: dict[Path, list[str]] = {}
    for preset, r in sorted(resolved.items()):
        if r.config.model.encoder == "dinov2_vits14":
            users.setdefault(weights_path(r.config, env), []).append(preset)
    if not users:
        return Check(name, SKIPPED, "no preset uses the DINOv2 encoder")
    pin = (pin or env.get(PIN_ENV) or "").strip().lower() or None
    rows = [_weights_row(path, presets, default, pin) for path, presets in users.items()]
    order = (SKIPPED, OK, WARN, FAIL)
    status, found, fix = max(rows, key=lambda r: order.index(r[0]))
    return Check(name, status, found, fix)


def _weights_row(
    path: Path, presets: list[str], default: str, pin: str | None
) -> tuple[str, str, str]:
    who = f"preset{'s' * (len(presets) > 1)} {', '.join(presets)}"
    if not path.is_file():
        status = FAIL if default in presets else WARN
        return (
            status,
            f"{path} is missing (needed by {who})",
            f"download {DINOV2_WEIGHTS_URL} to {path}, or set model.encoder_weights=PATH",
        )
    found = f"{path} ({fmt_bytes(path.stat().st_size)}, for {who})"
    refetch = f"download {DINOV2_WEIGHTS_URL} again to {path}"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        return FAIL, f"{found} is not a complete torch file ({exc}): a broken download?", refetch
    if bad is not None:
        return FAIL, f"{found}: {bad} is damaged (CRC mismatch)", refetch
    digest = sha256(path)
    if pin is None:
        return (
            OK,
            f"{found}, sha256 {digest}",
            (
                "no official sha256 is published for this file and dinowm records none: compare "
                f"the hash with a copy you trust, then pin it: --weights-sha256 HEX or {PIN_ENV}"
            ),
        )
    if digest != pin:
        return (
            FAIL,
            f"{found}: sha256 {digest} is not the pinned {pin}",
            f"{refetch}, or pin the hash of the file you trust",
        )
    return OK, f"{found}: sha256 matches the pinned {pin[:12]}…", ""

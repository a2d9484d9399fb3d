# SPDX-License-Identifier: MIT
"""The trials of `dinowm bench` and `dinowm probe`: each in a fresh process (dinowm.perf.bench,
or dinowm.perf.profile for a step cut into its parts), variants measured side by side, the
largest batch that fits a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm.config import Project, Resolved, model_hash, resolve, to_dict
from dinowm.errors import ConfigError, DinowmError
from dinowm.schema import RunConfig, all_keys
from dinowm.trials import json_out, last_error, write_synthetic

BENCH_EPISODES, BENCH_LENGTH = 8, 120


def bench_data(project: Project, cfg: RunConfig) -> Path:
    """The preset's dataset when it exists, else a synthetic one at the model's frame size."""
    if cfg.data.path and Path(cfg.data.path).is_dir():
        return Path(cfg.data.path)
    path = project.outputs / ".bench_data" / f"synthetic_{cfg.model.img_size}px"
    if not path.exists():
        try:
            write_synthetic(
                path,
                episodes=BENCH_EPISODES,
                length=BENCH_LENGTH,
                image_size=cfg.model.img_size,
                seed=0,
            )
        except DinowmError:
            if not path.exists():
                raise
    return path


def run_trial(
    cfg: RunConfig,
    data: Path,
    mode: str,
    batch: int,
    steps: int,
    warmup: int,
    timeout: float = 900.0,
    mem_cap_gib: float | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One trial in a fresh process (clean peak memory); a crash is reported, not raised.
    With `profile` (a path without suffix) the trial is dinowm.perf.profile's instead,
    which writes PROFILE.json and PROFILE.txt."""
    spec: dict[str, Any] = {
        "config": to_dict(cfg),
        "data_path": str(data),
        "mode": mode,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "mem_cap_gib": mem_cap_gib,
    }
    module = "dinowm.perf.bench"
    if profile is not None:  # the trainer's loader workers: data wait is one of the parts
        spec.update(out=str(profile), workers=cfg.data.num_workers)
        module = "dinowm.perf.profile"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", module, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"mode": mode, "batch": batch, "status": "timeout"}
    out = json_out(proc)
    if out is None:
        oom = "out of memory" in proc.stderr.lower()
        return {
            "mode": mode,
            "batch": batch,
            "status": "oom" if oom else "error",
            "error": last_error(proc, "no output")[:300],
        }
    return out


VARIANTS_HELP = (
    "give MODE[:KEY=VALUE...] items separated by commas, MODE fast or reference, "
    "e.g. fast,fast:decoder_every=4,fast:decoder=off,reference"
)


@dataclass(frozen=True)
class Variant:
    """One trial setting of `dinowm bench --variants`: a mode and the keys it changes."""

    label: str  # as given: fast:decoder_every=4
    mode: str  # fast | reference
    overrides: tuple[str, ...]  # full keys: training.decoder_every=4


def parse_variants(text: str) -> list[Variant]:
    """`fast,fast:decoder_every=4,reference` → variants. A key is a dotted config key or the
    last part of one when that is unique (decoder_every, decoder); ConfigError names a bad
    item. Whether the keys exist and their values fit is resolve()'s check."""
    leaves: dict[str, list[str]] = {}
    for key in all_keys():
        leaves.setdefault(key.rpartition(".")[2], []).append(key)
    variants: list[Variant] = []
    for label in (x.strip() for x in text.split(",")):
        mode, *settings = label.split(":")
        if mode not in ("fast", "reference"):
            raise ConfigError(
                f"--variants {text!r}: {label!r} does not start with a mode; {VARIANTS_HELP}."
            )
        overrides = []
        for item in settings:
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise ConfigError(
                    f"--variants {text!r}: {item!r} of {label!r} is not KEY=VALUE; {VARIANTS_HELP}."
                )
            if key in ("mode", "perf.mode"):
                raise ConfigError(
                    f"--variants {text!r}: {label!r} sets the mode twice; the "
                    f"mode is the part before the first ':' ({VARIANTS_HELP})."
                )
            full = leaves.get(key, [key]) if "." not in key else [key]
            overrides.append(f"{full[0] if len(full) == 1 else key}={value}")
        if label in (v.label for v in variants):
            raise ConfigError(
                f"--variants {text!r}: {label!r} is given twice; give each variant once."
            )
        variants.append(Variant(label, mode, tuple(overrides)))
    return variants


def memory_cap_card(cap_gib: float) -> dict[str, Any]:
    """The GPU a memory cap applies to (the first visible one); ConfigError without a GPU or
    with a cap above the card's memory."""
    from dinowm.supervise.hardware import gpu_description
    from dinowm.supervise.telemetry import visible_gpus

    desc = gpu_description()
    visible = visible_gpus(os.environ, [g["uuid"] for g in desc["gpus"]])
    if not visible:
        raise ConfigError(
            f"--mem-cap-gib {cap_gib:g}: no GPU is visible on this machine "
            f"(NVML: {desc.get('nvml')}); the cap limits CUDA memory, so leave "
            f"--mem-cap-gib out on the CPU."
        )
    card = desc["gpus"][visible[0]]
    if cap_gib * 1024 > card["vram_mib"]:
        raise ConfigError(
            f"--mem-cap-gib {cap_gib:g}: above the {card['vram_mib'] / 1024:.1f} "
            f"GiB of {card['name']}; give a cap of at most that, e.g. "
            f"--mem-cap-gib 16."
        )
    return card


def bench(
    project: Project,
    preset: str | None,
    overrides: list[str],
    batches: list[int],
    variants: list[Variant],
    steps: int,
    warmup: int,
    mem_cap_gib: float | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every (variant, batch) trial, each row with reference's step time over its own
    (vs_reference; reference is the first reference-mode variant) at the same batch. Every
    variant's config is checked before the first trial."""
    resolved = resolve(project, preset, overrides)
    configs = {v.label: variant_config(project, preset, overrides, v) for v in variants}
    rows = []
    for batch in batches:
        for v in variants:
            cfg = configs[v.label]
            row = run_trial(
                cfg, bench_data(project, cfg), v.mode, batch, steps, warmup, mem_cap_gib=mem_cap_gib
            )
            row["variant"] = v.label
            rows.append(row)
            if report:
                report(row)
    base = next((v.label for v in variants if v.mode == "reference"), None)
    ratios = {}
    for batch in batches:
        ok = {r["variant"]: r for r in rows if r["batch"] == batch and r.get("status") == "ok"}
        for r in ok.values():
            r["vs_reference"] = ok[base]["s_per_step"] / r["s_per_step"] if base in ok else None
        if "fast" in ok and "reference" in ok:
            ratios[batch] = ok["reference"]["s_per_step"] / ok["fast"]["s_per_step"]
    return {
        "preset": resolved.preset,
        "overrides": overrides,
        "data": str(bench_data(project, resolved.config)),
        "reference": base,
        "variants": [v.label for v in variants],
        "mem_cap_gib": mem_cap_gib,
        "encoder": "random weights (bench never needs the weights file)",
        "steps": steps,
        "warmup": warmup,
        "rows": rows,
        "speedup_fast_over_reference": {str(k): round(v, 3) for k, v in ratios.items()},
    }


def variant_config(
    project: Project, preset: str | None, overrides: list[str], variant: Variant
) -> RunConfig:
    """The config a variant's trials run with; ConfigError names the variant."""
    try:
        return resolve(project, preset, [*overrides, *variant.overrides]).config
    except ConfigError as exc:
        raise ConfigError(f"--variants {variant.label!r}: {exc}") from None


def profile(
    project: Project,
    preset: str | None,
    overrides: list[str],
    variant: Variant,
    batch: int,
    steps: int,
    warmup: int,
    out: Path,
    mem_cap_gib: float | None = None,
) -> dict[str, Any]:
    """One variant's step decomposed into its parts, with torch.profiler's top ops: written
    to OUT.json and OUT.txt; DinowmError when the trial fails."""
    cfg = variant_config(project, preset, overrides, variant)
    out = out.expanduser().resolve()
    if out.suffix in (".json", ".txt"):
        out = out.with_suffix("")
    row = run_trial(
        cfg,
        bench_data(project, cfg),
        variant.mode,
        batch,
        steps,
        warmup,
        mem_cap_gib=mem_cap_gib,
        profile=out,
    )
    if "components" not in row:
        raise DinowmError(
            f"the profile of {variant.label} at batch {batch} failed: "
            f"{row['status']}: {row.get('error', '')}"
        )
    row["variant"] = variant.label
    return row


def probe(
    project: Project,
    preset: str | None,
    overrides: list[str],
    gpu: dict[str, Any],
    margin: float = 0.9,
    steps: int = 3,
    max_batch: int = 1024,
    min_batch: int = 1,
    mem_cap_gib: float | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Largest batch that fits this GPU (or `mem_cap_gib` of it): doubling from min_batch,
    then bisection; each trial in a subprocess."""
    cfg = resolve(project, preset, overrides).config
    data = bench_data(project, cfg)
    vram = mem_cap_gib * 1024 if mem_cap_gib else gpu["vram_mib"]
    trials: dict[int, dict[str, Any]] = {}

    def fits(batch: int) -> bool:
        row = run_trial(cfg, data, "fast", batch, steps, warmup=1, mem_cap_gib=mem_cap_gib)
        peak = max(row.get("train_peak_mib") or 0, row.get("val_peak_mib") or 0)
        row.update(
            peak_mib=peak or None,
            vram_mib=vram,
            fits=row.get("status") == "ok" and peak <= margin * vram,
        )
        trials[batch] = row
        if report:
            report(row)
        return row["fits"]

    low, high, batch = 0, None, min_batch
    while batch <= max_batch:
        if not fits(batch):
            high = batch
            break
        low, batch = batch, batch * 2
    while high is not None and high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return [trials[b] for b in sorted(trials)]


def probe_records(
    card: dict[str, Any], resolved: Resolved, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows runs.db keeps of a probe's trials: which batch fit this GPU model for this
    model's shape and precision (model_hash)."""
    key = model_hash(resolved.config)
    return [
        {
            "gpu_name": card["name"],
            "vram_mib": card["vram_mib"],
            "preset": resolved.preset,
            "model_hash": key,
            "precision": resolved.config.training.precision,
            "batch": r["batch"],
            "peak_mib": r.get("peak_mib"),
            "fits": int(r["fits"]),
            "status": r.get("status"),
            "s_per_step": r.get("s_per_step"),
        }
        for r in rows
    ]

# SPDX-License-Identifier: MIT
"""Everything the log says about a run, from its rows in runs.db (no run folder is read)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dinowm.schema import SECTIONS, RunConfig, all_keys
from dinowm.store import Store

DEFAULTS = {name: key.default for name, key in all_keys().items()}
LATER_KEYS = {  # added after the first records
    "dist.nproc_per_node",
    "dist.timeout_s",
    "training.decoder_every",
    "model.decoder",
    "data.cache_max_gib",
    "perf.compile_mode",
    "perf.encoder_inference_mode",
    "perf.prefetch",
}


@dataclass
class RunRecord:
    """One run as the export sees it."""

    run: dict[str, Any]
    values: dict[str, Any]  # flat key → value of the config the run trains with
    sources: dict[str, str]  # flat key → where a value that is not the default came from
    cfg: RunConfig | None  # the typed config, for derived values (None if it does not load)
    hardware: dict[str, Any] | None
    epochs: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    start: dict[str, Any] | None  # the trainer's latest `start` event
    folder: str  # "ok", "gone" (recorded but missing) or "none" (never recorded)
    resume_overrides: list[str]
    gpus: list[tuple[int, list[Any]]] = field(default_factory=list)  # per epoch, several GPUs
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # `dinowm eval`, by epoch
    rollouts: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch → rollout errors

    @property
    def id(self) -> str:
        return self.run["id"]

    @property
    def run_dir(self) -> Path | None:
        return Path(self.run["run_dir"]) if self.run.get("run_dir") else None

    def derived(self, name: str) -> Any:
        """A derived config value (emb_dim, micro_batch, ...) or None."""
        try:
            return getattr(self.cfg, name) if self.cfg is not None else None
        except (TypeError, ValueError):  # a recorded value of another type than today's
            return None


def load_records(store: Store, ids: list[str] | None) -> list[RunRecord]:
    """Records of the given runs (all runs when None), oldest first; one query per table."""
    runs = store.runs_oldest_first(ids)
    if ids is not None:
        order = {run_id: i for i, run_id in enumerate(ids)}
        runs.sort(key=lambda r: order[r["id"]])
    hardware, epochs = store.hardware_of(ids), store.epoch_rows_of(ids)
    incidents, notes = store.incidents_of(ids), store.notes_of(ids)
    checkpoints, gpus = store.checkpoints_of(ids), store.epoch_gpus_of(ids)
    evaluations, rollouts = store.evaluations_of(ids), store.epoch_rollouts_of(ids)
    records = [
        _record(
            r,
            hardware.get(r["id"]),
            epochs.get(r["id"], []),
            incidents.get(r["id"], []),
            notes.get(r["id"], []),
            checkpoints.get(r["id"], []),
            gpus.get(r["id"], []),
        )
        for r in runs
    ]
    for rec in records:
        rec.evaluations = evaluations.get(rec.id, [])
        rec.rollouts = rollouts.get(rec.id, {})
    return records


def _record(
    run: dict[str, Any],
    hardware: dict[str, Any] | None,
    epochs: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    gpus: list[tuple[int, list[Any]]] | None = None,
) -> RunRecord:
    run_dir = Path(run["run_dir"]) if run.get("run_dir") else None
    folder = "none" if run_dir is None else ("ok" if run_dir.is_dir() else "gone")
    doc = _loads(run.get("config_json")) or {}
    values = flatten(doc)
    resumed = [str(o) for o in _loads(run.get("resume_overrides_json")) or []]
    sources = _sources(values, _loads(run.get("changed_json")) or {}, resumed)
    start = _loads(run.get("start_json"))
    # A complete record only; keys added since a run was recorded take their defaults, which
    # are what it trained with (one rank before [dist] existed).
    cfg = typed(doc) if DEFAULTS.keys() - values.keys() <= LATER_KEYS else None
    return RunRecord(
        run,
        values,
        sources,
        cfg,
        hardware,
        epochs,
        incidents,
        notes,
        checkpoints,
        start,
        folder,
        resumed,
        gpus or [],
    )


def typed(doc: dict[str, Any]) -> RunConfig | None:
    """The recorded config as a RunConfig for its derived values; None if it does not fit.

    No validation: the values were validated when the run started, and a log reports what
    was recorded (from_dict would re-check every range of every run).
    """
    try:
        sections = {
            name: cls(**doc[name])
            for name, cls in SECTIONS.items()
            if isinstance(doc.get(name), dict)
        }
        return RunConfig(**{k: v for k, v in doc.items() if k not in SECTIONS}, **sections)
    except TypeError:
        return None


def flatten(doc: dict[str, Any]) -> dict[str, Any]:
    """Nested config (config.json form) → flat 'section.key' values."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in SECTIONS and isinstance(value, dict):
            out.update({f"{key}.{leaf}": v for leaf, v in value.items()})
        else:
            out[key] = value
    return out


def _sources(values: dict[str, Any], changed: dict[str, str], resumed: list[str]) -> dict[str, str]:
    """Where each non-default value came from: preset, override, resume, or the run itself."""
    sources = {k: str(s) for k, s in changed.items() if s != "default"}
    for item in resumed:
        sources[item.partition("=")[0].strip()] = "resume"
    for key, value in values.items():
        if key in DEFAULTS and value != DEFAULTS[key] and key not in sources:
            sources[key] = "runtime"  # e.g. grad_accum doubled by the OOM policy
    return sources


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None

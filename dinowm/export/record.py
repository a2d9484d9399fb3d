"""Everything the log says about a run: its rows in runs.db and what its run folder adds."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dinowm.schema import SECTIONS, RunConfig, all_keys
from dinowm.store import Store

START_RE = re.compile(rb'"type":\s*"start"')
BLOCK = 16 << 10
TAIL_BYTES = 16 << 10  # how far back from the end the latest `start` event is looked for
HEAD_BYTES = 1 << 20  # how far from the beginning the first one is looked for
DEFAULTS = {name: key.default for name, key in all_keys().items()}


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
    checkpoints = store.checkpoints_of(ids)
    return [_record(r, hardware.get(r["id"]), epochs.get(r["id"], []),
                    incidents.get(r["id"], []), notes.get(r["id"], []),
                    checkpoints.get(r["id"], [])) for r in runs]


def _record(run: dict[str, Any], hardware: dict[str, Any] | None, epochs: list[dict[str, Any]],
            incidents: list[dict[str, Any]], notes: list[dict[str, Any]],
            checkpoints: list[dict[str, Any]]) -> RunRecord:
    run_dir = Path(run["run_dir"]) if run.get("run_dir") else None
    folder = "none" if run_dir is None else ("ok" if run_dir.is_dir() else "gone")
    spec = _read_spec(run_dir) if folder == "ok" else None
    doc = (spec or {}).get("config") or _loads(run.get("config_json")) or {}
    values = flatten(doc)
    resumed = [str(o) for o in (spec or {}).get("resume_overrides", [])]
    sources = _sources(values, (spec or {}).get("changed", {}), resumed)
    start = start_event(run_dir / "events.jsonl") if folder == "ok" and run_dir else None
    cfg = typed(doc) if DEFAULTS.keys() <= values.keys() else None  # a complete record only
    return RunRecord(run, values, sources, cfg, hardware, epochs, incidents, notes,
                     checkpoints, start, folder, resumed)


def typed(doc: dict[str, Any]) -> RunConfig | None:
    """The recorded config as a RunConfig for its derived values; None if it does not fit.

    No validation: the values were validated when the run started, and a log reports what
    was recorded (from_dict would re-check every range of every run).
    """
    try:
        sections = {name: cls(**doc[name]) for name, cls in SECTIONS.items()
                    if isinstance(doc.get(name), dict)}
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


def _sources(values: dict[str, Any], changed: dict[str, str],
             resumed: list[str]) -> dict[str, str]:
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


def _read_spec(run_dir: Path | None) -> dict[str, Any] | None:
    """config.json of a run folder, or None when it is missing or damaged."""
    if run_dir is None:
        return None
    try:
        spec = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def start_event(path: Path) -> dict[str, Any] | None:
    """The trainer's latest `start` event when it is near the end of the file, else its first.

    An events file holds a heartbeat per step (megabytes for a long run), so neither end is
    read further than a few blocks. Any start event serves: the parameter counts and the
    dataset it reports are those of the run's config and data, which a resume cannot change.
    """
    return latest_start(path) or first_start(path)


def first_start(path: Path, block: int = BLOCK, max_bytes: int = HEAD_BYTES
                ) -> dict[str, Any] | None:
    """The first `start` event of an events file, read forwards in blocks (bounded)."""
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    with fh:
        carry = b""
        while fh.tell() < max_bytes:
            data = fh.read(block)
            text = carry + data
            lines = text.split(b"\n") if START_RE.search(text) else [text[text.rfind(b"\n") + 1:]]
            carry = lines.pop() if data else b""  # the last piece may go on in the next block
            for line in lines:
                event = _start(line)
                if event is not None:
                    return event
            if not data:
                return None
    return None


def _start(line: bytes) -> dict[str, Any] | None:
    if not START_RE.search(line):
        return None
    event = _loads(line.decode("utf-8", "replace"))
    return event if isinstance(event, dict) and event.get("type") == "start" else None


def latest_start(path: Path, block: int = BLOCK, max_bytes: int = TAIL_BYTES
                 ) -> dict[str, Any] | None:
    """The last `start` event of an events file, read backwards in blocks (bounded)."""
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        end, carry = pos, b""
        while pos > 0 and end - pos < max_bytes:
            size = min(block, pos)
            pos -= size
            fh.seek(pos)
            data = fh.read(size) + carry
            cut = data.find(b"\n")
            lines = data.split(b"\n") if START_RE.search(data) or cut < 0 else [data[:cut]]
            carry = lines[0] if pos > 0 else b""  # may be the tail of a line further back
            for line in reversed(lines[1:] if pos > 0 else lines):
                event = _start(line)
                if event is not None:
                    return event
    return None

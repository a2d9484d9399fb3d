# SPDX-License-Identifier: MIT
"""dinowm.toml + preset + key=value overrides → a frozen, validated RunConfig.

A value's checks and the rules across keys live in dinowm.validation (build, imported here)."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dinowm.errors import ConfigError
from dinowm.rundir import SPEC
from dinowm.schema import SECTIONS, Key, RunConfig, all_keys
from dinowm.validation import build, coerce, parse_override

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib

CONFIG_NAME = "dinowm.toml"
PROJECT_KEYS = {"runs_db": "runs.db", "outputs": "outputs", "default_preset": "demo"}
PRESET_META = ("description", "extends")
TEMPLATE = Path(__file__).with_name("dinowm.toml")


@dataclass(frozen=True)
class Project:
    """A project directory: its dinowm.toml and where its runs live."""

    root: Path
    config_path: Path
    runs_db: Path
    outputs: Path
    default_preset: str
    defaults: dict[str, Any]
    presets: dict[str, dict[str, Any]]
    slurm: dict[str, Any] = field(default_factory=dict)  # [slurm]: see dinowm.cluster.options
    # [alerts] as written; dinowm.alerts.settings.for_project checks it. None: no table.
    alerts: dict[str, Any] | None = None

    # The queue's files beside the run folders (dinowm.queue): its journal of adds, moves,
    # removes, starts and ends, which `dinowm reindex` replays; the one queue supervisor's
    # lock; that supervisor's output.
    @property
    def queue_journal(self) -> Path:
        return self.outputs / "queue.jsonl"

    @property
    def queue_lock(self) -> Path:
        return self.outputs / "queue.lock"

    @property
    def queue_log(self) -> Path:
        return self.outputs / "queue.log"


@dataclass(frozen=True)
class Resolved:
    """A resolved configuration and where each value came from."""

    config: RunConfig
    preset: str
    sources: dict[str, str]
    overrides: tuple[str, ...]

    def changed(self) -> dict[str, str]:
        """Keys whose value differs from the built-in default, with the layer that set it."""
        return {k: s for k, s in self.sources.items() if s != "default"}

    def overridden(self) -> list[str]:
        """Keys the command line changed from the preset's value."""
        return [k for k, s in self.sources.items() if s == "override"]


def data_path(cfg: RunConfig) -> Path:
    """The run's dataset folder; an empty data.path is refused, naming the fix."""
    if not cfg.data.path:
        raise ConfigError(
            "data.path is empty: point it at the dataset, e.g. "
            "data.path=/path/to/franka_cube_stack_ds (or use --preset demo)."
        )
    return Path(cfg.data.path)


def find_config(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Path:
    """The dinowm.toml to use: --config, then $DINOWM_CONFIG, then cwd and its parents."""
    given = explicit or os.environ.get("DINOWM_CONFIG")
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(
                f"Config file {path} does not exist; create it with "
                f"'dinowm init {path.parent}' or point --config at a dinowm.toml."
            )
        return path.resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    raise ConfigError(
        f"No {CONFIG_NAME} in {start} or any parent folder; run 'dinowm init' "
        f"there, or pass --config PATH (or set DINOWM_CONFIG)."
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into one line with file and line."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix the syntax there.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}).") from None


def load_project(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Project:
    """Find and read the project's dinowm.toml."""
    path = find_config(explicit, cwd)
    doc = read_toml(path)
    where = f"{path}"
    unknown = set(doc) - {"project", "defaults", "presets", "slurm", "alerts"}
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(
            f"Unknown table [{name}] in {where}; the allowed tables are [project], "
            f"[defaults], [presets.NAME], [slurm] and [alerts]."
        )
    proj = _table(doc, "project", where)
    for key in proj:
        if key not in PROJECT_KEYS:
            raise ConfigError(
                f"Unknown key '{key}' in [project] of {where}{_did_you_mean(key, PROJECT_KEYS)}"
            )
        if not isinstance(proj[key], str) or not proj[key]:
            raise ConfigError(
                f"Key '{key}' in [project] of {where} must be a non-empty string, "
                f"got {proj[key]!r}."
            )
    settings = {**PROJECT_KEYS, **proj}
    root = path.parent
    presets = _table(doc, "presets", where)
    for name, body in presets.items():
        if not isinstance(body, dict):
            raise ConfigError(f"[presets.{name}] in {where} must be a table, got {body!r}.")
    return Project(
        root=root,
        config_path=path,
        runs_db=(root / settings["runs_db"]).resolve(),
        outputs=(root / settings["outputs"]).resolve(),
        default_preset=settings["default_preset"],
        defaults=_table(doc, "defaults", where),
        presets=presets,
        slurm=_table(doc, "slurm", where),
        alerts=_table(doc, "alerts", where) if "alerts" in doc else None,
    )


def resolve(
    project: Project, preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Resolved:
    """Built-in defaults → [defaults] → preset (and what it extends) → key=value overrides."""
    keys = all_keys()
    name = preset or project.default_preset
    values: dict[str, Any] = {k: key.default for k, key in keys.items()}
    sources = dict.fromkeys(keys, "default")
    layers = [("dinowm.toml", "[defaults]", project.defaults)]
    layers += [
        (f"preset {p}", f"[presets.{p}]", project.presets[p]) for p in _preset_chain(project, name)
    ]
    for source, table, body in layers:
        where = f"{table} of {project.config_path}"
        for key, raw in _flatten(body, where):
            if key in PRESET_META and table.startswith("[presets"):
                continue
            value = coerce(_lookup(keys, key, where), raw, where)
            if value != values[key]:
                values[key], sources[key] = value, source
    for item in overrides:
        key, raw = _split_override(item)
        value = parse_override(_lookup(keys, key, "the command line"), raw)
        if value != values[key]:
            values[key], sources[key] = value, "override"
    for key, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            raise ConfigError(
                f"{key}={value!r} ({sources.get(key, 'default')}) holds a NUL character, which "
                f"no path or name may hold; remove it."
            )
    if values["data.path"]:
        values["data.path"] = str((project.root / Path(values["data.path"]).expanduser()).resolve())
    config = build(values)
    return Resolved(config, name, sources, tuple(overrides))


def from_dict(doc: dict[str, Any]) -> RunConfig:
    """A RunConfig from its to_dict() form (config.json of a run), validated again."""
    flat = dict(_flatten(doc, SPEC))
    keys = all_keys()
    unknown = [k for k in flat if k not in keys]
    if unknown:
        raise ConfigError(
            f"{SPEC} has unknown key '{unknown[0]}'; it was written by another dinowm version."
        )
    values = {k: key.default for k, key in keys.items()}
    values.update({k: coerce(keys[k], v, SPEC) for k, v in flat.items()})
    return build(values)


def to_dict(config: RunConfig) -> dict[str, Any]:
    """Nested plain-dict form of a config (what config.json holds)."""
    return dataclasses.asdict(config)


def flat_values(config: RunConfig) -> dict[str, Any]:
    """Flat key → value for every key of a config."""
    return dict(_flatten(to_dict(config), "config"))


def config_hash(config: RunConfig) -> str:
    """Stable 12-hex identity of a configuration (sorted canonical JSON)."""
    blob = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def model_hash(config: RunConfig) -> str:
    """12 hex identifying the model's shape and precision (what decides GPU memory per sample)."""
    doc = {
        "model": dataclasses.asdict(config.model),
        "num_hist": config.num_hist,
        "num_pred": config.num_pred,
        "frameskip": config.frameskip,
        "precision": config.training.precision,
        "mode": config.perf.mode,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def with_values(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy with flat keys changed (`training__batch_size=16` style), validated again."""
    values = flat_values(config)
    for name, value in changes.items():
        values[name.replace("__", ".")] = value
    return build(values)


def _preset_chain(project: Project, name: str) -> list[str]:
    """The preset and the presets it extends, base first."""
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current not in project.presets:
            known = ", ".join(sorted(project.presets)) or "none"
            origin = f" (extended by preset '{chain[0]}')" if chain else ""
            raise ConfigError(
                f"Unknown preset '{current}'{origin} in {project.config_path}"
                f"{_did_you_mean(current, project.presets)} Known presets: {known}."
            )
        if current in chain:
            raise ConfigError(
                f"Preset '{current}' extends itself in a cycle in "
                f"{project.config_path}; remove one 'extends'."
            )
        chain.append(current)
        parent = project.presets[current].get("extends")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(
                f"'extends' in [presets.{current}] must be a preset name, got {parent!r}."
            )
        current = parent
    return chain[::-1]


def _table(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"'{name}' in {where} must be a table ([{name}]), got {value!r}.")
    return value


def _flatten(body: dict[str, Any], where: str, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested tables → (dotted key, value) pairs."""
    out: list[tuple[str, Any]] = []
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if prefix or name not in SECTIONS:
                raise ConfigError(
                    f"Unknown table '{name}' in {where}; sections are {', '.join(SECTIONS)}."
                )
            out.extend(_flatten(value, where, f"{name}."))
        else:
            out.append((name, value))
    return out


def _lookup(keys: dict[str, Key], name: str, where: str) -> Key:
    if name in keys:
        return keys[name]
    raise ConfigError(f"Unknown key '{name}' in {where}{_did_you_mean(name, keys)}")


def _did_you_mean(name: str, known: Any) -> str:
    """'. Did you mean 'x'?' for the closest known name, or a pointer to the list."""
    known = list(known)
    leaf = name.rpartition(".")[2]
    same_leaf = [k for k in known if k.rpartition(".")[2] == leaf]
    close = same_leaf or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        close = [
            k for k in known if difflib.get_close_matches(leaf, [k.rpartition(".")[2]], cutoff=0.75)
        ]
    if close:
        return f". Did you mean '{close[0]}'?"
    return "; 'dinowm config --keys' lists every key."


def _split_override(item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    key = key.strip().lstrip("+")
    if not sep or not key:
        raise ConfigError(
            f"Override '{item}' must look like key=value, e.g. training.batch_size=16."
        )
    return key, raw.strip()


DINOV2_WEIGHTS_FILE = "dinov2_vits14_pretrain.pth"
DINOV2_WEIGHTS_URL = f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/{DINOV2_WEIGHTS_FILE}"


def dinov2_weights_path(encoder_weights: str, env: Mapping[str, str] | None = None) -> Path:
    """The DINOv2 weights file: model.encoder_weights, else where torch.hub keeps it."""
    if encoder_weights:
        return Path(encoder_weights).expanduser()
    env = os.environ if env is None else env
    # torch.hub.get_dir() without torch: a variable set but empty counts as set, as there
    home = env.get("TORCH_HOME", os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home), "hub", "checkpoints", DINOV2_WEIGHTS_FILE)

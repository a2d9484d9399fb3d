# SPDX-License-Identifier: MIT
"""A configuration's values checked against schema.py: each key's type (from TOML or from the
text of a key=value override), its choices and range, then the rules across keys (build)."""

from __future__ import annotations

from typing import Any

from dinowm.errors import ConfigError
from dinowm.schema import SECTIONS, Key, RunConfig, all_keys

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def build(values: dict[str, Any]) -> RunConfig:
    """Flat key → value mapping → validated RunConfig (ranges and cross-key rules)."""
    keys = all_keys()
    for name, value in values.items():
        _check_range(keys[name], value)
    nested: dict[str, Any] = {}
    for name, value in values.items():
        section, _, leaf = name.rpartition(".")
        (nested.setdefault(section, {}) if section else nested)[leaf] = value
    for section, cls in SECTIONS.items():
        nested[section] = cls(**nested.get(section, {}))
    config = RunConfig(**nested)
    _check_consistency(config)
    return config


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def coerce(spec: Key, raw: Any, where: str) -> Any:
    """Check a TOML value against the key's type (ints are accepted for floats)."""
    if isinstance(raw, bool) and _on_off(spec):  # `cache_features = true`, older config.json
        raw = "on" if raw else "off"
    ok = (isinstance(raw, spec.type) and not (spec.type is int and isinstance(raw, bool))) or (
        spec.type is float and isinstance(raw, int) and not isinstance(raw, bool)
    )
    if not ok:
        raise ConfigError(
            f"Key '{spec.name}' in {where} must be {_TYPE_WORDS[spec.type]}, got {_describe(raw)}."
        )
    return float(raw) if spec.type is float else raw


def parse_override(spec: Key, raw: str) -> Any:
    """Parse the text of `key=value` as the key's type."""
    text = raw.strip()
    if spec.type is str:
        text = text[1:-1] if len(text) >= 2 and text[0] == text[-1] in "'\"" else text
        if _on_off(spec):  # a switch with an auto: true/false mean on/off
            text = {
                "true": "on",
                "yes": "on",
                "1": "on",
                "false": "off",
                "no": "off",
                "0": "off",
            }.get(text.lower(), text)
        return text
    try:
        if spec.type is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        return int(text) if spec.type is int else float(text)
    except ValueError:
        raise ConfigError(
            f"{spec.name}={raw!r} is not {_TYPE_WORDS[spec.type]}; "
            f"e.g. {spec.name}={_example(spec)}."
        ) from None


def _on_off(spec: Key) -> bool:
    """A string key whose choices are on/off (and auto): it takes booleans too."""
    return spec.type is str and spec.choices is not None and {"on", "off"} <= set(spec.choices)


def _example(spec: Key) -> str:
    if spec.type is bool:
        return "true"
    return str(spec.default)


def _check_range(spec: Key, value: Any) -> None:
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(
            f"{spec.name}={value!r} is not allowed; choose one of {', '.join(spec.choices)}."
        )
    if spec.type in (int, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{spec.name}={value} must be a finite number.")
        low, high = spec.min, spec.max
        if low is not None and (value <= low if spec.min_open else value < low):
            op = ">" if spec.min_open else ">="
            raise ConfigError(
                f"{spec.name}={value} is out of range: it must be {op} "
                f"{_num(low)}{_range_hint(spec)}."
            )
        if high is not None and (value >= high if spec.max_open else value > high):
            op = "<" if spec.max_open else "<="
            raise ConfigError(
                f"{spec.name}={value} is out of range: it must be {op} "
                f"{_num(high)}{_range_hint(spec)}."
            )


def _range_hint(spec: Key) -> str:
    return " (only num_pred=1 is supported)" if spec.name == "num_pred" else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_consistency(c: RunConfig) -> None:
    """Rules that involve more than one key."""
    m = c.model
    if m.encoder_img_size % 14:
        raise ConfigError(
            f"model.encoder_img_size={m.encoder_img_size} must be a multiple of "
            f"14 (the encoder's patch size), e.g. 196."
        )
    grid = m.encoder_img_size // 14
    if m.img_size != 16 * grid:
        raise ConfigError(
            f"model.img_size={m.img_size} must be 16 x the patch grid "
            f"(model.encoder_img_size={m.encoder_img_size} gives {grid} patches a "
            f"side, so model.img_size={16 * grid})."
        )
    if c.training.grad_accum > c.training.batch_size:
        raise ConfigError(
            f"training.grad_accum={c.training.grad_accum} exceeds "
            f"training.batch_size={c.training.batch_size}; lower grad_accum."
        )
    ranks = c.dist.nproc_per_node
    if ranks > 1 and c.training.batch_size < ranks * c.training.grad_accum:
        raise ConfigError(
            f"training.batch_size={c.training.batch_size} is smaller than "
            f"dist.nproc_per_node={ranks} x training.grad_accum="
            f"{c.training.grad_accum}; raise the batch or use fewer ranks."
        )
    if c.thermal.resume_temp_c >= c.thermal.max_temp_c:
        raise ConfigError(
            f"thermal.resume_temp_c={c.thermal.resume_temp_c} must be below "
            f"thermal.max_temp_c={c.thermal.max_temp_c}."
        )
    if m.encoder == "tiny" and m.tiny_dim % m.tiny_heads:
        raise ConfigError(
            f"model.tiny_dim={m.tiny_dim} must be divisible by model.tiny_heads={m.tiny_heads}."
        )
    if m.decoder_channels % 2:
        raise ConfigError(f"model.decoder_channels={m.decoder_channels} must be even.")

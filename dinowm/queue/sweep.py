# SPDX-License-Identifier: MIT
"""Sweeps: `key=v1,v2` lists and `key=lo:hi` ranges → one list of overrides per configuration.

A grid takes every combination of the lists (the first key varies slowest); random draws take
N configurations, each value drawn from its list or uniformly from its range (a range of two
integers draws integers), reproducibly for a seed.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from dinowm.errors import ConfigError


@dataclass(frozen=True)
class Axis:
    """One swept key: its values, or a range lo:hi."""

    key: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    integers: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_axis(item: str) -> Axis:
    """'training.batch_size=8,16' or 'training.predictor_lr=1e-4:1e-3' (spaces and brackets
    around the values are fine: 'frameskip=[3, 5]')."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"Sweep axis {item!r} is not key=value; write e.g. "
            f"training.batch_size=8,16 or training.predictor_lr=1e-4:1e-3."
        )
    text = text.strip().removeprefix("[").removesuffix("]").strip()
    lo, colon, hi = text.partition(":")
    if colon and "," not in text and _number(lo) is not None and _number(hi) is not None:
        low, high = float(lo), float(hi)
        if low > high:
            raise ConfigError(f"Sweep range {key}={text} runs backwards; write {key}={hi}:{lo}.")
        integers = all(part.strip().lstrip("+-").isdigit() for part in (lo, hi))
        return Axis(key, low=low, high=high, integers=integers)
    values = tuple(v.strip().strip("'\"") for v in text.split(","))
    if any(v == "" for v in values):
        raise ConfigError(
            f"Sweep axis {item!r} has an empty value; separate values with commas, e.g. {key}=8,16."
        )
    return Axis(key, values=tuple(dict.fromkeys(values)))


def parse_axes(items: list[str] | tuple[str, ...]) -> list[Axis]:
    """Every axis of a sweep; a key given again replaces its earlier values, as a repeated
    override does."""
    axes = list({axis.key: axis for axis in map(parse_axis, items)}.values())
    if not axes:
        raise ConfigError(
            "A sweep needs at least one key=v1,v2; e.g. dinowm sweep --preset "
            "demo training.batch_size=8,16."
        )
    return axes


def grid(axes: list[Axis]) -> list[list[str]]:
    """Every combination of the axes' values, as override lists."""
    for axis in axes:
        if axis.is_range:
            raise ConfigError(
                f"{axis.key}={axis.low:g}:{axis.high:g} is a range; ranges are "
                f"drawn with --random N, a grid needs values "
                f"({axis.key}=v1,v2,...)."
            )
    return [
        [f"{a.key}={v}" for a, v in zip(axes, combo)]
        for combo in itertools.product(*(a.values for a in axes))
    ]


def draw(axes: list[Axis], n: int, seed: int) -> list[list[str]]:
    """n configurations drawn from the axes with a seeded generator (the same seed, the same
    draws)."""
    if n < 1:
        raise ConfigError(f"--random {n}: draw at least one configuration (--random 4).")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        items = []
        for axis in axes:
            if not axis.is_range:
                value = rng.choice(axis.values)
            elif axis.integers:
                value = str(rng.randint(int(axis.low), int(axis.high)))  # type: ignore[arg-type]
            else:
                value = f"{rng.uniform(axis.low, axis.high):.6g}"  # type: ignore[arg-type]
            items.append(f"{axis.key}={value}")
        out.append(items)
    return out

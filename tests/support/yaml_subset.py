# SPDX-License-Identifier: MIT
"""Read back the YAML dinowm writes (hydra.yaml): PyYAML when installed (the test extra), else
a strict reader of the block subset the emitter uses (JSON scalars and flow lists)."""

from __future__ import annotations

import json
from typing import Any


def load(text: str) -> dict[str, Any]:
    """The mapping a YAML document holds."""
    try:
        import yaml
    except ImportError:
        return read_subset(text)
    return yaml.safe_load(text)


def read_subset(text: str) -> dict[str, Any]:
    """Nested block mappings whose values are JSON, indented by two spaces per level."""
    value, end = _mapping(text.splitlines(), 0, 0)
    if end != len(text.splitlines()):
        raise ValueError(f"line {end + 1}: not part of the document")
    return value


def _mapping(lines: list[str], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines):
        line = lines[i]
        depth = len(line) - len(line.lstrip(" "))
        if depth < indent:
            break
        if depth > indent or not line.strip():
            raise ValueError(f"line {i + 1}: unexpected indent or blank line: {line!r}")
        body = line.strip()
        if body.startswith('"'):
            key, used = json.JSONDecoder().raw_decode(body)
            rest = body[used:]
        else:
            key, _, after = body.partition(":")
            rest = ":" + after
        if not rest.startswith(":"):
            raise ValueError(f"line {i + 1}: no ':' after the key")
        rest = rest[1:].strip()
        if key in out:
            raise ValueError(f"line {i + 1}: key {key!r} twice")
        if rest:
            out[key], i = json.loads(rest), i + 1
        else:
            out[key], i = _mapping(lines, i + 1, indent + 2)
    return out, i

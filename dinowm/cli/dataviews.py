# SPDX-License-Identifier: MIT
"""Rich rendering of a dataset summary (`dinowm data check`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text

from dinowm.formats import literal, literal_text


def summary_view(path: Path, s: dict[str, Any]) -> Group:
    """Overview, per-dimension ranges, problems and warnings."""
    title = f"dataset {literal(path)}"
    head = Table(title=title, title_justify="left", show_header=False, min_width=cell_len(title))
    head.add_column("field", style="bold")
    head.add_column("value")
    lengths = s.get("lengths") or {}
    image = s.get("image") or {}
    rows = [
        ("layout", s.get("layout")),
        ("episodes", f"{s.get('episodes')} (on disk {s.get('episodes_on_disk')})"),
        (
            "lengths",
            f"min {lengths.get('min')} / mean {lengths.get('mean')} / "
            f"max {lengths.get('max')} frames",
        ),
        (
            "state / action / proprio dims",
            f"{s.get('state_dim')} / {s.get('action_dim')} / {s.get('proprio_dim')}",
        ),
        (
            "frames",
            f"{image.get('shape')} {image.get('dtype')}"
            + (" (memory-mapped)" if s.get("frames_mmap") else ""),
        ),
        (
            "slices",
            f"{s.get('slices')} with frameskip {s.get('frameskip')}, num_hist "
            f"{s.get('num_hist')}, num_pred {s.get('num_pred')} (span {s.get('span')})",
        ),
        ("too short", ", ".join(map(str, s.get("too_short") or [])) or "none"),
    ]
    for name, nf in (s.get("non_finite") or {}).items():
        where = (
            ""
            if not nf.get("count")
            else (
                f": first at episode {nf['episode']}, "
                f"timestep {nf['timestep']}, column {nf['column']}"
            )
        )
        rows.append((f"non-finite in {name}", f"{nf.get('count', 0)}{where}"))
    for field, value in rows:
        head.add_row(field, literal_text("-" if value is None else value))
    parts: list[Any] = [head]
    if s.get("ranges"):
        parts.append(_ranges(s["ranges"]))
    for problem in s.get("problems") or []:
        parts.append(literal_text(f"problem: {problem}", "bold red"))
    for warning in s.get("warnings") or []:
        parts.append(literal_text(f"warning: {warning}", "yellow"))
    if not s.get("problems"):
        parts.append(Text("no problems found", style="green"))
    return Group(*parts)


def _ranges(ranges: dict[str, Any]) -> Table:
    """Each dimension's minimum and maximum, per kind (action, proprio)."""
    table = Table(title="value ranges", title_justify="left")
    for col in ("", "dim", "min", "max"):
        table.add_column(col, justify="right" if col in ("min", "max", "dim") else "left")
    for kind, r in ranges.items():
        for i, (lo, hi) in enumerate(zip(r["min"], r["max"])):
            table.add_row(literal_text(kind if i == 0 else ""), str(i), f"{lo:.4g}", f"{hi:.4g}")
    return table

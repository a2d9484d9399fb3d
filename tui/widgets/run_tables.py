# SPDX-License-Identifier: MIT
"""The run screen's tables: hyperparameters (changes marked), epochs, incidents, notes,
evaluations."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from dinowm.export.evaltable import COLUMNS, EvalTable, cells, horizon_curve, same
from dinowm.formats import STATUS_STYLE, fmt_duration, fmt_num, fmt_time, literal
from tui.widgets.table import Table

SOURCE_RANK = {"override": 0, "resume": 0}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config.json → {'training.epochs': 6, ...}."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def param_rows(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, value, source) with overrides first, then preset values, then defaults."""
    flat = flatten(spec.get("config") or {})
    sources = dict(spec.get("changed") or {})
    for item in spec.get("resume_overrides") or []:
        sources[item.partition("=")[0].strip()] = "resume"
    rows = [(k, _show(v), sources.get(k, "default")) for k, v in flat.items()]
    return sorted(rows, key=lambda r: (SOURCE_RANK.get(r[2], 1 if r[2] != "default" else 2), r[0]))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return '""' if value == "" else str(value)


class KeyedTable(Table):
    """A DataTable whose rows are keyed; set_rows() adds, updates and removes by key."""

    def __init__(self, columns: tuple[str, ...], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.column_names = columns
        self.shown: dict[str, tuple[Any, ...]] = {}

    def on_mount(self) -> None:
        for name in self.column_names:
            self.add_column(name, key=name)

    def set_rows(self, rows: dict[str, tuple[Any, ...]], follow: bool = False) -> None:
        """Make the table show `rows` (in insertion order for new keys), touching only changes."""
        for key in set(self.shown) - set(rows):
            self.remove_row(key)
            del self.shown[key]
        added = False
        for key, values in rows.items():
            old = self.shown.get(key)
            if old is None:
                self.add_row(*values, key=key)
                added = True
            elif old != values:
                for name, new, was in zip(self.column_names, values, old):
                    if new != was:
                        self.update_cell(key, name, new, update_width=True)
            self.shown[key] = values
        if added and follow:
            self.move_cursor(row=self.row_count - 1)
        self.check_idle()  # widths are recomputed when this table's pump goes idle

    @property
    def current_key(self) -> str | None:
        """Row key under the cursor."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def params_table_rows(spec: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Hyperparameter rows; values changed from the preset (overrides) marked ●."""
    out = {}
    for key, value, source in param_rows(spec):
        if source in ("override", "resume"):
            style, mark = "bold yellow", "●"
        else:
            style, mark = ("" if source != "default" else "dim"), " "
        out[key] = (
            Text(f"{mark} {literal(key)}", style=style),
            Text(literal(source), style="dim" if source == "default" else ""),
            Text(literal(value), style=style),
        )
    return out


def epoch_rows(epochs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Per-epoch losses, z_err_pred, time, GPU figures, attempt, and the val rollout error
    (last: the columns an 80-column terminal shows stay as they were)."""
    return {
        str(e["epoch"]): (
            Text(str(e["epoch"]), justify="right"),
            Text(fmt_num(e.get("train_loss")), justify="right"),
            Text(fmt_num(e.get("val_loss")), justify="right"),
            Text(fmt_num(e.get("z_err_pred")), justify="right"),
            Text(fmt_duration(e.get("duration_s")), justify="right"),
            Text(fmt_num(e.get("samples_per_s"), 3), justify="right"),
            Text(fmt_num(e.get("max_gpu_temp_c"), 3), justify="right"),
            Text(fmt_num(e.get("mean_power_w"), 3), justify="right"),
            Text(str(e.get("attempt") or "-"), justify="right"),
            Text(fmt_num(_val_rollout(e)), justify="right"),
        )
        for e in epochs
    }


def _val_rollout(epoch: dict[str, Any]) -> float | None:
    """The trainer's open-loop rollout error on val of an epoch (metrics_json), or None."""
    try:
        return json.loads(epoch.get("metrics_json") or "{}").get("val_z_visual_err_rollout")
    except ValueError:
        return None


def gpu_rows(epochs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Each GPU's epochs of a run on several GPUs ({} for one GPU)."""
    rows = {}
    for e in epochs:
        for g in json.loads(e.get("gpus_json") or "[]"):
            rows[f"{e['epoch']}:{g.get('gpu')}"] = (
                Text(str(e["epoch"]), justify="right"),
                Text(str(g.get("gpu")), justify="right"),
                *(
                    Text("-" if g.get(k) is None else f"{g[k]:.0f}", justify="right")
                    for k in ("max_temp_c", "mean_power_w", "mean_util", "max_mem_mib")
                ),
            )
    return rows


INCIDENT_STYLE = {
    "stall": "bold red",
    "crash": "red",
    "oom": "red",
    "lost": "magenta",
    "thermal": "yellow",
    "resume": "cyan",
}


def incident_rows(incidents: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """The incident timeline: time, kind, attempt, epoch, summary."""
    return {
        str(i["id"]): (
            Text(fmt_time(i["t"])),
            Text(literal(i["kind"]), style=INCIDENT_STYLE.get(i["kind"], "")),
            Text(str(i.get("attempt") or "-")),
            Text(str(i.get("epoch") or "-")),
            Text(literal(i["summary"][:200]), no_wrap=True),
        )
        for i in incidents
    }


def note_rows(notes: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Notes: time, text, source (edited ones say so)."""
    return {
        str(n["id"]): (
            Text(fmt_time(n["t"])),
            Text(literal(n["text"])),
            Text(literal(n["source"]) + (" (edited)" if n.get("edited_at") else "")),
        )
        for n in notes
    }


EVAL_COLUMNS = tuple(header for key, header in COLUMNS if key != "run")
CURVE_COLUMNS = ("H", "z_visual_err", "z_proprio_err", "img MSE", "img PSNR", "img SSIM")


def eval_rows(table: EvalTable) -> dict[str, tuple[Any, ...]]:
    """One row per evaluated checkpoint (the CLI's columns but the run), best marked."""
    rows = {}
    for row in table.rows:
        text = {k: literal(v) for k, v in cells(row).items()}
        mark = ("★" if same(row, table.best_plan) else "") + (
            "◆" if same(row, table.best_val) else ""
        )
        status = STATUS_STYLE.get(row.get("status") or "", ("", ""))[1]
        rows[str(row["checkpoint"])] = tuple(
            Text(f"{text[k]} {mark}".rstrip(), style="bold" if mark else "")
            if k == "checkpoint"
            else Text(text[k], style=status)
            if k == "status"
            else Text(text[k], justify="right")
            for k, _ in COLUMNS
            if k != "run"
        )
    return rows


def curve_rows(row: dict[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    """An evaluation's open-loop error against the horizon, one row per step."""
    if row is None:
        return {}
    return {
        str(h): (
            Text(str(h), justify="right"),
            *(
                Text(fmt_num(values[k], 3 if k in ("img_psnr", "img_ssim") else 4), justify="right")
                for k in ("z_visual_err", "z_proprio_err", "img_mse", "img_psnr", "img_ssim")
            ),
        )
        for h, values in horizon_curve(row)
    }

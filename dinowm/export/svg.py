# SPDX-License-Identifier: MIT
"""Small self-contained SVG line charts: a run's losses per epoch (train, val, z_err_pred),
and any lines over shared x values (an evaluation's error against the horizon)."""

from __future__ import annotations

import math
from html import escape
from typing import cast

from dinowm.export.record import RunRecord
from dinowm.formats import fmt_num, literal

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 44
SERIES = (
    ("train_loss", "Train Loss", "#1f77b4"),
    ("val_loss", "Val Loss", "#ff7f0e"),
    ("z_err_pred", "z_err_pred", "#2ca02c"),
)


def has_curve(rec: RunRecord) -> bool:
    """A curve is drawn from two epochs on."""
    return len(rec.epochs) >= 2


def curve_name(md_name: str, run_id: str) -> str:
    """'run-20260107-093348-ab12-loss.svg' next to 'run.md'."""
    stem = md_name[:-3] if md_name.lower().endswith(".md") else md_name
    return f"{stem}-{run_id}-loss.svg"


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [round(first, 12)]
    while ticks[-1] < high - step * 1e-9:  # the last tick is at or above the highest value
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


def loss_svg(rec: RunRecord, title: str, x_label: str) -> str:
    """The SVG document; gaps (an epoch without a value) break the line."""
    return lines_svg(
        [e["epoch"] for e in rec.epochs],
        [(label, color, [e[key] for e in rec.epochs]) for key, label, color in SERIES],
        title,
        x_label,
    )


def lines_svg(
    xs: list[float], series: list[tuple[str, str, list[float | None]]], title: str, x_label: str
) -> str:
    """Lines over shared x values with a legend: (label, colour, values, None for a gap)."""
    values = [v for _, _, column in series for v in column if v is not None]
    ticks = _nice_ticks(min([*values, 0.0]), max([*values, 0.0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="13" font-weight="bold">{_xml(title)}</text>',
    ]
    out += _y_axis(ticks, plot_h)
    out += _x_axis(xs, plot_w, plot_h)
    out.append(
        f'<path d="M{LEFT} {TOP}V{TOP + plot_h}H{WIDTH - RIGHT}" fill="none" stroke="#333"/>'
    )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{_xml(x_label)}</text>"
    )
    out += _polylines(xs, series, (ticks[0], ticks[-1]), plot_w, plot_h)
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _y_axis(ticks: list[float], plot_h: float) -> list[str]:
    """A grid line and a label at each tick of the value axis."""
    y0, y1 = ticks[0], ticks[-1]
    out = []
    for tick in ticks:
        y = TOP + (1 - (tick - y0) / ((y1 - y0) or 1)) * plot_h
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_num(tick, 3)}</text>'
        )
    return out


def _x_axis(xs: list[float], plot_w: float, plot_h: float) -> list[str]:
    """A tick mark and a label at every x value (about ten at most, the last always)."""
    x0, x1 = min(xs), max(xs)
    out = []
    step = max(1, math.ceil(len(xs) / 10))
    for x_value in xs[::step] + ([xs[-1]] if (len(xs) - 1) % step else []):
        x = LEFT + (x_value - x0) / ((x1 - x0) or 1) * plot_w
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" '
            f'y2="{TOP + plot_h + 4}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{x_value}</text>'
        )
    return out


def _polylines(
    xs: list[float],
    series: list[tuple[str, str, list[float | None]]],
    y_range: tuple[float, float],
    plot_w: float,
    plot_h: float,
) -> list[str]:
    """Each series as lines through its values, broken at gaps; dots on up to 50 points."""
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range
    dots = len(xs) <= 50
    scale_x, scale_y = plot_w / ((x1 - x0) or 1), plot_h / ((y1 - y0) or 1)
    px = [f"{LEFT + (x - x0) * scale_x:.1f}" for x in xs]  # shared by every line
    bottom = TOP + plot_h
    out = []
    for _, color, column in series:
        for segment in _segments(column):
            points = " ".join([f"{px[i]},{bottom - (v - y0) * scale_y:.1f}" for i, v in segment])
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.8"/>'
            )
            if dots:
                out.extend(
                    f'<circle cx="{px[i]}" cy="{bottom - (v - y0) * scale_y:.1f}" '
                    f'r="2.5" fill="{color}"/>'
                    for i, v in segment
                )
    return out


def _legend(series: list[tuple[str, str, list[float | None]]]) -> list[str]:
    """The legend box in the top right corner: a line of each colour and its label."""
    legend_w = max([112] + [len(label) * 6 + 36 for label, _, _ in series])
    lx = WIDTH - RIGHT - legend_w + 2
    out = [
        f'<rect x="{lx - 6}" y="{TOP}" width="{legend_w}" '
        f'height="{16 * len(series) + 4}" fill="white" fill-opacity="0.85"/>'
    ]
    for i, (label, color, _) in enumerate(series):
        ly = TOP + 8 + 16 * i
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{color}" '
            f'stroke-width="2.5"/>'
        )
        out.append(f'<text x="{lx + 24}" y="{ly + 4}">{_xml(label)}</text>')
    return out


def _segments(values: list[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive values that are not None, as (index, value)."""
    if None not in values:  # the usual case: one line through every epoch
        return [list(enumerate(cast("list[float]", values)))] if values else []
    segments: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
                current = []
        else:
            current.append((i, value))
    if current:
        segments.append(current)
    return segments


def _xml(text: str) -> str:
    """Text in the SVG: XML's special characters escaped, control characters (which XML
    forbids) visible."""
    return escape(literal(text))

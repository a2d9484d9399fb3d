# SPDX-License-Identifier: MIT
"""The error-against-horizon plot of one evaluated checkpoint, as a small standalone SVG."""

from __future__ import annotations

from html import escape
from typing import Any

W, H, PAD = 420, 240, 44


def horizon_svg(curves: dict[str, Any], title: str) -> str:
    """z_visual_err (left axis) against the horizon, with the points labelled."""
    xs, ys = curves.get("horizon") or [], curves.get("z_visual_err") or []
    if not xs or not ys:
        return ""
    top = max(ys) * 1.1 or 1.0
    span = max(len(xs) - 1, 1)

    def px(i: int) -> float:
        return PAD + i * (W - 2 * PAD) / span

    def py(v: float) -> float:
        return H - PAD - v / top * (H - 2 * PAD)

    points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(ys))
    marks = "".join(
        f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3"/>'
        f'<text x="{px(i):.1f}" y="{py(v) - 7:.1f}" text-anchor="middle">{v:.3g}'
        f'</text><text x="{px(i):.1f}" y="{H - PAD + 16}" '
        f'text-anchor="middle">{x}</text>'
        for i, (x, v) in enumerate(zip(xs, ys))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="11">'
        f'<rect width="{W}" height="{H}" fill="white"/>'
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>'
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>'
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">horizon (steps of frameskip)'
        f'</text><text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" '
        f'text-anchor="middle">latent visual error</text>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/>'
        f'<g fill="#1f77b4">{marks}</g></svg>'
    )

# SPDX-License-Identifier: MIT
"""Rich renderings of the speed and memory commands (`dinowm bench`, `dinowm probe`)."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table

from dinowm.formats import literal


def bench_table(result: dict[str, Any]) -> Table:
    """One row per (batch, variant): time, throughput, TFLOP/s, memory, vs reference."""
    rows = result["rows"]
    device = rows[0].get("gpu") or rows[0].get("device", "?")
    cap = f", capped at {result['mem_cap_gib']:g} GiB" if result.get("mem_cap_gib") else ""
    table = Table(
        title=literal(f"bench {result['preset']} ({device}{cap})"),
        title_justify="left",
        caption=literal(_bench_caption(result), lines=True),
        caption_justify="left",
    )
    for col in (
        "batch",
        "variant",
        "s/step",
        "samples/s",
        "TFLOP/s",
        "% peak",
        "peak train",
        "peak val",
        "loader samples/s",
        "vs reference",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for r in sorted(rows, key=lambda r: r["batch"]):
        ok = r.get("status") == "ok"
        table.add_row(
            str(r["batch"]),
            literal(r.get("variant", r["mode"])),
            f"{r['s_per_step']:.4f}" if ok else literal(r.get("status", "?")),
            f"{r['samples_per_s']:.1f}" if ok else "-",
            _num(r.get("achieved_tflops"), ".3g"),
            _num(r.get("pct_of_peak"), ".1f"),
            _mib(r.get("train_peak_mib")),
            _mib(r.get("val_peak_mib")),
            _num(r.get("loader_samples_per_s"), ".0f"),
            _num(r.get("vs_reference"), ".2f", "x"),
        )
    return table


def _bench_caption(result: dict[str, Any]) -> str:
    """What '% peak' and 'vs reference' are measured against."""
    row: dict[str, Any] = next((r for r in result["rows"] if r.get("status") == "ok"), {})
    peak = (
        f"% peak: of the {row['peak_card']} dense BF16 peak, {row['peak_tflops']:g} TFLOP/s "
        f"(vendor datasheet)"
        if row.get("peak_tflops")
        else f"% peak: {row.get('peak_note') or 'no trial finished'}"
    )
    ref = (
        f"vs reference: {result['reference']}'s s/step over the row's (above 1: faster)"
        if result.get("reference")
        else "vs reference: no reference variant was measured"
    )
    return f"{peak}\n{ref}"


def profile_view(r: dict[str, Any]) -> Group:
    """`dinowm bench --profile`: the step's parts as a table, its FLOPs, the files written."""
    table = Table(
        title=literal(
            f"profile {r['variant']} batch {r['batch']} ({r['gpu'] or r['device']}), "
            f"mean of {r['steps']} steps"
        ),
        title_justify="left",
    )
    for col in ("component", "s", "share of step"):
        table.add_column(col, justify="left" if col == "component" else "right")
    for c in r["components"]:
        table.add_row(c["label"], f"{c['s']:.5f}", f"{c['share']:.1%}")
    table.add_row("whole step", f"{r['step_s']:.5f}", "100.0%", style="bold")
    lines = []
    if r.get("achieved_tflops"):
        peak = (
            f", {r['pct_of_peak']:.1f}% of the {r['peak_card']} dense BF16 peak"
            if r.get("pct_of_peak")
            else f"; {r['peak_note']}"
        )
        lines.append(
            f"{r['flop_per_step'] / 1e9:.3g} GFLOP per step, "
            f"{r['achieved_tflops']:.3g} TFLOP/s over the whole step{peak}"
        )
    lines.append(f"wrote {r['files']['txt']} and {r['files']['json']}")
    return Group(table, *(literal(line) for line in lines))


def probe_table(
    card: dict[str, Any], preset: str, rows: list[dict[str, Any]], mem_cap_gib: float | None = None
) -> Table:
    """Batch, peak VRAM, fits or not: the table the user once estimated by hand."""
    cap = f", capped at {mem_cap_gib:g} GiB" if mem_cap_gib else ""
    title = literal(f"{card['name']} ({card['vram_mib']:,} MiB{cap}), preset {preset}")
    table = Table(title=title, title_justify="left", min_width=cell_len(title))
    for col in ("batch", "peak VRAM", "status"):
        table.add_column(col, justify="right" if col != "status" else "left")
    best = max((r["batch"] for r in rows if r["fits"]), default=None)
    for r in rows:
        mark = (
            "✅ fits" + (" (largest)" if r["batch"] == best else "")
            if r["fits"]
            else f"❌ {'OOM' if r.get('status') == 'oom' else 'over the margin'}"
        )
        table.add_row(str(r["batch"]), _mib(r.get("peak_mib")), mark)
    return table


def scaling_table(result: dict[str, Any]) -> Table:
    """`dinowm bench --gpus N`: one rank against N, samples/s, memory and the efficiency."""
    table = Table(
        title=literal(f"scaling {result['preset']}, global batch {result['batch_size']}"),
        title_justify="left",
    )
    for col in ("ranks", "samples/s", "s/step", "peak GPU memory", "efficiency"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        ok = r["status"] == "ok"
        eff = result["efficiency"] if r["ranks"] > 1 and result["efficiency"] else None
        table.add_row(
            str(r["ranks"]),
            f"{r['samples_per_s']:.1f}" if ok else literal(r["status"]),
            f"{r['s_per_step']:.4f}" if ok else literal(r.get("error", "-")[:40]),
            _mib(r.get("peak_gpu_mem_mib")),
            f"{eff:.0%}" if eff else "",
        )
    return table


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.2f} GiB"


def _num(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"

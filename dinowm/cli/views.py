# SPDX-License-Identifier: MIT
"""Rich renderings for the CLI: runs table, resolved config, one run, hardware, doctor."""

from __future__ import annotations

import json
import time
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from dinowm.backends import backend_of
from dinowm.config import Resolved, flat_values
from dinowm.formats import (
    fmt_duration,
    fmt_num,
    fmt_time,
    literal,
    literal_text,
    run_duration,
    status_text,
    world_size,
)
from dinowm.schema import DERIVED, all_keys
from dinowm.supervise.hardware import gpu_summary
from dinowm.views import runs as view

# The columns `dinowm runs` shows, in its order (dinowm.views.runs defines them and their cells
# for the TUI's table too); the placement one joins after the name when a listed run has one.
RUNS_KEYS = (
    "id",
    "name",
    "preset",
    "status",
    "epoch",
    "train",
    "val",
    "zbest",
    "temp",
    "start",
    "duration",
)


def runs_table(
    runs: list[dict[str, Any]],
    width: int = 200,
    samples: dict[str, list[dict[str, Any]]] | None = None,
) -> Table:
    """The `dinowm runs` table, dropping the least needed columns to fit `width` cells;
    `samples`: the latest GPU samples of active runs, by run id."""
    now = time.time()
    rows = [view.texts(view.values(r, (samples or {}).get(r["id"], []), now)) for r in runs]
    columns = view.fitting(view.columns(RUNS_KEYS, placed=view.placed(runs)), rows, width)
    table = Table(
        title=f"{len(runs)} run{'s' * (len(runs) != 1)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in columns:
        widest = max([len(column.label)] + [row[column.key].cell_len for row in rows])
        table.add_column(column.label, justify=column.justify, no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*(row[column.key] for column in columns))
    return table


def config_table(resolved: Resolved, show_all: bool = True) -> Table:
    """The resolved configuration, one key a row, with its source; overrides marked."""
    cfg = resolved.config
    table = Table(title=f"preset {resolved.preset}", title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value")
    table.add_column("from", style="dim")
    overridden = set(resolved.overridden())
    for key, value in flat_values(cfg).items():
        source = resolved.sources.get(key, "default")
        if not show_all and source == "default":
            continue
        mark = "changed" if key in overridden else source
        style = "bold yellow" if key in overridden else ""
        table.add_row(Text(key, style=style), literal_text(_show(value), style), literal_text(mark))
    for name in DERIVED:
        table.add_row(
            Text(name, style="italic"), literal_text(_show(getattr(cfg, name))), "derived"
        )
    return table


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or '""'
    return str(value)


def keys_table() -> Table:
    """Every configuration key with its type, default and meaning."""
    table = Table(title="configuration keys", title_justify="left")
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col, no_wrap=col == "key")
    for key in all_keys().values():
        help_text = key.help + (f" ({' | '.join(key.choices)})" if key.choices else "")
        table.add_row(key.name, key.type.__name__, _show(key.default), help_text)
    return table


def hardware_table(hw: dict[str, Any]) -> Table:
    """The user's 'System Hardware' section."""
    table = Table(title="System hardware", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")

    def gb(mib: int | None) -> str:
        return "-" if mib is None else f"{mib:,} MiB (~{mib / 1024:.0f} GB)"

    rows = [
        ("GPU", gpu_summary(hw)),
        ("Driver", hw.get("driver") or "-"),
        ("CUDA (driver)", hw.get("cuda") or "-"),
        ("torch", hw.get("torch") or "-"),
        ("CPU", hw.get("cpu_model") or "-"),
        ("Cores / threads", f"{hw.get('cpu_cores')} / {hw.get('cpu_threads')}"),
        ("Sockets", str(hw.get("cpu_sockets"))),
        ("Max / min clock", _mhz(hw.get("cpu_max_mhz"), hw.get("cpu_min_mhz"))),
        ("RAM total", gb(hw.get("ram_total_mib"))),
        ("RAM available", gb(hw.get("ram_available_mib"))),
        ("Swap", gb(hw.get("swap_total_mib"))),
        ("Host", hw.get("hostname") or "-"),
    ]
    gpus = hw.get("gpus") or json.loads(hw.get("gpus_json") or "[]")
    for g in gpus[1:]:
        rows.insert(1, (f"GPU {g['index']}", f"{g['name']}, {g['vram_mib']:,} MiB"))
    for field, value in rows:
        table.add_row(field, literal_text(value))
    return table


def _mhz(high: float | None, low: float | None) -> str:
    if high is None:
        return "-"
    return f"{high / 1000:.1f} GHz / {(low or 0) / 1000:.1f} GHz"


def run_view(
    run: dict[str, Any],
    epochs: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    notes: list[dict[str, Any]],
    hw: dict[str, Any] | None,
) -> Group:
    """`dinowm show RUN`: overview, epochs, incidents, notes."""
    head = Table(show_header=False, title=f"run {run['id']}", title_justify="left")
    head.add_column("field", style="bold")
    head.add_column("value")
    for field, value in (
        ("name", literal(run.get("name") or "-")),
        ("preset", literal(run.get("preset") or "-")),
        ("status", status_text(run["status"])),
        ("epoch", f"{run['epoch']}/{run.get('epochs_target') or '?'}"),
        ("attempts", str(run.get("attempts") or 0)),
        ("exit reason", literal(run.get("exit_reason") or "-")),
        ("start", fmt_time(run.get("started_at") or run.get("created_at"))),
        ("duration", fmt_duration(run_duration(run))),
        ("run folder", literal(run.get("run_dir") or "-")),
        ("encoder", literal(run.get("encoder_label") or "-")),
        ("GPU", literal(gpu_summary(hw)) if hw else "-"),
        ("ranks", ranks_text(run)),
        *_placement(run),
        ("command", literal(run.get("command") or "-")),
        ("wandb", literal(run.get("wandb_url") or "-")),
    ):
        head.add_row(field, value if isinstance(value, Text) else Text(str(value)))
    parts: list[Any] = [head, epochs_table(epochs)]
    per_gpu = gpus_table(epochs)
    if per_gpu is not None:
        parts.append(per_gpu)
    if incidents:
        inc = Table(title="incidents", title_justify="left")
        for col in ("time", "kind", "summary"):
            inc.add_column(col)
        for i in incidents:
            inc.add_row(fmt_time(i["t"]), literal_text(i["kind"]), literal_text(i["summary"]))
        parts.append(inc)
    if notes:
        nt = Table(title="notes", title_justify="left")
        nt.add_column("time", no_wrap=True)
        nt.add_column("note")
        for n in notes:
            nt.add_row(fmt_time(n["t"]), literal_text(n["text"], lines=True))
        parts.append(nt)
    return Group(*parts)


def _placement(run: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """('slurm', 'job 12 RUNNING on n1') for a run with a placement to show; none else."""
    backend = backend_of(run)
    where = backend.placement(run)
    return ((backend.name, literal(where)),) if where else ()


def gpus_table(epochs: list[dict[str, Any]]) -> Table | None:
    """Each GPU's epochs of a run on several GPUs (None for one GPU)."""
    rows = [
        (e["epoch"], g) for e in epochs if e.get("gpus_json") for g in json.loads(e["gpus_json"])
    ]
    if not rows:
        return None
    table = Table(title="GPUs per epoch", title_justify="left")
    for col in ("epoch", "GPU", "max °C", "mean W", "use %", "max MiB"):
        table.add_column(col, justify="right")
    for epoch, g in rows:
        table.add_row(
            str(epoch),
            str(g.get("gpu")),
            *(
                "-" if g.get(k) is None else f"{g[k]:.0f}"
                for k in ("max_temp_c", "mean_power_w", "mean_util", "max_mem_mib")
            ),
        )
    return table


def ranks_text(run: dict[str, Any]) -> str:
    """'2 (torchrun, DistributedDataParallel on cpu)' for a run on several ranks, else '1'."""
    world = world_size(run)
    if world == 1:
        return "1"
    device = literal(str(json.loads(run["start_json"]).get("device") or "?").split(":")[0])
    return f"{world} (torchrun, DistributedDataParallel on {device})"


def epochs_table(epochs: list[dict[str, Any]]) -> Table:
    """Per-epoch losses, z_err_pred, the val rollout error (when the trainer measured it),
    time and GPU figures."""
    table = Table(title="epochs", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    rollout = [val_rollout(e) for e in epochs]
    columns = [
        "epoch",
        "train",
        "val",
        "z_err_pred",
        "rollout",
        "time",
        "samples/s",
        "°C max",
        "W mean",
    ]
    if all(r is None for r in rollout):
        columns.remove("rollout")
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for e, roll in zip(epochs, rollout):
        cells = [
            str(e["epoch"]),
            fmt_num(e.get("train_loss")),
            fmt_num(e.get("val_loss")),
            fmt_num(e.get("z_err_pred")),
            fmt_num(roll),
            fmt_duration(e.get("duration_s")),
            fmt_num(e.get("samples_per_s"), 3),
            fmt_num(e.get("max_gpu_temp_c"), 3),
            fmt_num(e.get("mean_power_w"), 3),
        ]
        if "rollout" not in columns:
            del cells[4]
        table.add_row(*cells)
    return table


def val_rollout(epoch: dict[str, Any]) -> float | None:
    """The epoch's open-loop rollout error on val (metrics_json), or None."""
    try:
        return json.loads(epoch.get("metrics_json") or "{}").get("val_z_visual_err_rollout")
    except ValueError:
        return None


DOCTOR_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}


def doctor_table(checks: list[Any]) -> Table:
    """`dinowm doctor`: one row a check with its status, what was found and the fix."""
    bad = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    title = (f"{bad} check{'s' * (bad != 1)} failed" if bad else "nothing fails") + (
        f", {warned} warning{'s' * (warned != 1)}" if warned else ""
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found", ratio=3, overflow="fold")  # paths fold, never cut
    table.add_column("fix", ratio=2, overflow="fold")
    for c in checks:
        table.add_row(
            c.name,
            Text(c.status, style=DOCTOR_STYLE.get(c.status, "")),
            literal_text(c.found),
            literal_text(c.fix),
        )
    return table


def queue_view(shown: dict[str, Any], width: int = 200) -> Group:
    """`dinowm queue`: the entries (position, id, name, overrides, state, run) and a line on
    the queue supervisor."""
    entries = shown["entries"]
    table = Table(
        title=f"{len(entries)} queue entr{'y' if len(entries) == 1 else 'ies'}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    rows = [
        [
            Text(str(e["position"] or "-")),
            Text(str(e["id"])),
            literal_text(e["name"] or e["preset"]),
            literal_text(" ".join(e["overrides"]) or "-"),
            status_text(e["state"]),
            literal_text(e["run_id"] or "-"),
            literal_text(e["sweep_id"] or "-"),
        ]
        for e in entries
    ]
    headers = ("pos", "id", "name", "overrides", "state", "run", "sweep")
    need = [max([len(h)] + [r[i].cell_len for r in rows]) for i, h in enumerate(headers)]
    rest = sum(n + 3 for i, n in enumerate(need) if i != 3)
    for i, header in enumerate(headers):  # the overrides give way to the other columns
        table.add_column(
            header,
            no_wrap=True,
            overflow="ellipsis",
            min_width=need[i] if i != 3 else None,
            max_width=max(12, width - rest - 2) if i == 3 else None,
        )
    for row in rows:
        table.add_row(*row)
    holder = shown["supervisor"]
    line = (
        f"queue supervisor: pid {holder.pid}"
        + (f"; {literal(shown['status'])}" if shown["status"] else "")
        if holder
        else "no queue supervisor runs: 'dinowm queue start' starts one"
    )
    if shown["paused"]:
        line += " (paused: 'dinowm queue start' unpauses)"
    return Group(table, Text(line))


ALERT_STYLE = {"ok": "green", "failed": "red", "skipped": "dim", "on": "green", "off": "dim"}


def alert_rows(settings: Any, targets: list[Any], results: list[Any]) -> list[dict[str, str]]:
    """`dinowm alerts test`'s records: each target (redacted) → ok, failed or skipped, and why;
    the app's bell last."""
    rows = []
    done = iter(results)  # one per active target, in order (two URLs may redact alike)
    for target in targets:
        if target.inactive:
            rows.append({"target": target.label, "result": "skipped", "why": target.inactive})
        elif (result := next(done, None)) is not None:
            ok = "ok" if result.ok else "failed"
            rows.append({"target": target.label, "result": ok, "why": result.reason})
    tui = "a bell and a notification while the app runs" if settings.tui else "alerts.tui = false"
    rows.append({"target": "dinowm-tui", "result": "on" if settings.tui else "off", "why": tui})
    return rows


def alerts_table(rows: list[dict[str, str]], event: str, listed: bool) -> Table:
    """The records of alert_rows as a table."""
    table = Table(
        title=f"test alert '{literal(event)}'"
        + ("" if listed else " (not in alerts.events: runs will not send it)"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in ("target", "result", "why"):
        table.add_column(header, no_wrap=header != "why")
    for row in rows:
        table.add_row(
            literal_text(row["target"]),
            Text(row["result"], style=ALERT_STYLE.get(row["result"], "")),
            literal_text(row["why"]),
        )
    return table

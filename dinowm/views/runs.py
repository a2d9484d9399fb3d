# SPDX-License-Identifier: MIT
"""A run as a row of the runs table, for every face: the columns (label, justification, width,
which give way first on a narrow terminal), a run's raw values (sorted on) and their texts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import JustifyMethod
from rich.text import Text

from dinowm.backends import backend_of
from dinowm.formats import fmt_duration, fmt_num, fmt_time, literal_text, status_text
from dinowm.rundir import ACTIVE

FRESH_S = 30.0  # a GPU sample older than this is not "now"
BAR = 6  # cells of the epoch's progress bar
STATUS_ORDER = {
    s: i
    for i, s in enumerate(
        (
            "running",
            "resuming",
            "stopping",
            "pending",
            "created",
            "lost",
            "failed",
            "cancelled",
            "stopped",
            "completed",
        )
    )
}


@dataclass(frozen=True)
class Column:
    """One column of the runs table."""

    key: str
    label: str
    width: int  # the cells it starts with; wider values widen it, up to max_width
    drop: int  # on a narrow terminal the highest gives way first; 0 always stays
    justify: JustifyMethod = "left"
    max_width: int | None = None
    descending: bool = False  # sorted largest first when first chosen


# Most useful first, so that 80 columns show what matters.
COLUMNS = (
    Column("mark", " ", 1, 9),
    Column("status", "status", 11, 0),
    Column("name", "name", 8, 5, max_width=24),
    Column("epoch", "epoch", 8 + BAR, 0, descending=True),
    Column("train", "train", 7, 0, "right"),
    Column("val", "val", 7, 0, "right"),
    Column("zbest", "z best", 7, 1, "right"),
    Column("zlast", "z last", 7, 2, "right"),
    Column("temp", "°C/max", 6, 4, "right", descending=True),
    Column("power", "W", 3, 4, "right", descending=True),
    Column("attempts", "att", 3, 3, "right", descending=True),
    Column("incidents", "inc", 3, 3, "right", descending=True),
    Column("duration", "duration", 8, 3, "right", descending=True),
    Column("start", "start", 16, 6, descending=True),
    Column("preset", "preset", 6, 7, max_width=20),
    Column("id", "id", 20, 0),
)
# Where a run runs, after the name once a listed run has a placement (its backend's words:
# 'job 12 RUNNING on gpu03'); a table of runs on this machine only leaves it out.
PLACEMENT = Column("placement", "slurm", 5, 2, max_width=36)


def columns(keys: Sequence[str] | None = None, placed: bool = False) -> tuple[Column, ...]:
    """The columns of `keys` in that order (all by default), the placement one after the
    name when `placed`."""
    by_key = {c.key: c for c in COLUMNS}
    chosen = [by_key[k] for k in keys] if keys is not None else list(COLUMNS)
    if placed:
        at = next((i + 1 for i, c in enumerate(chosen) if c.key == "name"), len(chosen))
        chosen.insert(at, PLACEMENT)
    return tuple(chosen)


def placed(runs: Iterable[Mapping[str, Any]]) -> bool:
    """True when a run of the list has a placement to show (a cluster run)."""
    return any(backend_of(run).placement(run) for run in runs)


def temp_style(temp: float | None) -> str:
    """Red when hot, yellow when warm."""
    if temp is None:
        return ""
    return "bold red" if temp >= 83 else "yellow" if temp >= 75 else ""


def gpu_now(samples: list[dict[str, Any]], now: float) -> tuple[float | None, float | None]:
    """Hottest temperature and summed power over a run's GPUs, from fresh samples only."""
    fresh = [s for s in samples if now - s["t"] <= FRESH_S]
    temps = [s["temp_c"] for s in fresh if s.get("temp_c") is not None]
    powers = [s["power_w"] for s in fresh if s.get("power_w") is not None]
    return (max(temps) if temps else None), (sum(powers) if powers else None)


def values(
    run: Mapping[str, Any], samples: list[dict[str, Any]], now: float, marked: bool = False
) -> dict[str, Any]:
    """The raw value of every column for one run (summary row + its latest GPU samples)."""
    active = run["status"] in ACTIVE
    temp, power = gpu_now(samples, now) if active else (None, None)
    peak = max((t for t in (temp, run.get("max_gpu_temp_c")) if t is not None), default=None)
    start = run.get("started_at") or run.get("created_at")
    end = run.get("ended_at") or (now if active else None)
    return {
        "mark": marked,
        "status": run["status"],
        "name": run.get("name") or "-",
        "epoch": (run.get("epoch") or 0, run.get("epochs_target")),
        "train": run.get("last_train_loss"),
        "val": run.get("last_val_loss"),
        "zbest": run.get("best_z_err_pred"),
        "zlast": run.get("last_z_err_pred"),
        "temp": (temp, peak),
        "power": power if power is not None else run.get("last_mean_power_w"),
        "attempts": run.get("attempts") or 0,
        "incidents": run.get("incident_count") or 0,
        "duration": end - start if start and end else None,
        "start": start,
        "preset": run.get("preset") or "-",
        "id": run["id"],
        "placement": backend_of(run).placement(run),
    }


def sort_key(column: str, value: Any) -> Any:
    """How a column sorts: missing values last, statuses live first, epochs by fraction."""
    if column == "status":
        return STATUS_ORDER.get(value, 99)
    if column == "epoch":
        done, total = value
        return (done / total if total else 0.0, done)
    if column == "temp":
        value = value[0] if value[0] is not None else value[1]
    if isinstance(value, str):
        return (False, value.lower())
    return (value is None, 0 if value is None else value)


def progress_bar(done: int, total: int | None, width: int = BAR) -> Text:
    """'  3/6   ━━━━━━' with the finished part coloured."""
    text = Text(f"{done:>3}/{total if total else '?':<3} ", no_wrap=True)
    frac = min(1.0, done / total) if total else 0.0
    filled = round(frac * width)
    text.append("━" * filled, style="green")
    text.append("━" * (width - filled), style="grey37")
    return text


def texts(value: Mapping[str, Any]) -> dict[str, Text]:
    """The cell text of every column, from values()."""
    temp, peak = value["temp"]
    temp_text = Text()
    temp_text.append("-" if temp is None else f"{temp:.0f}", style=temp_style(temp))
    temp_text.append("/")
    temp_text.append("-" if peak is None else f"{peak:.0f}", style=temp_style(peak))
    power, incidents, where = value["power"], value["incidents"], value["placement"]
    return {
        "mark": Text("●" if value["mark"] else " ", style="bold magenta"),
        "status": status_text(value["status"]),
        "name": literal_text(value["name"]),
        "epoch": progress_bar(*value["epoch"]),
        **{k: Text(fmt_num(value[k])) for k in ("train", "val", "zbest", "zlast")},
        "temp": temp_text,
        "power": Text("-" if power is None else f"{power:.0f}"),
        "attempts": Text(str(value["attempts"])),
        "incidents": Text(str(incidents), style="yellow" if incidents else ""),
        "duration": Text(fmt_duration(value["duration"])),
        "start": Text(fmt_time(value["start"])),
        "preset": literal_text(value["preset"]),
        "id": literal_text(value["id"], "dim"),
        "placement": literal_text(where or "-", "" if where else "dim"),
    }


def fitting(cols: Sequence[Column], rows: Sequence[Mapping[str, Text]], width: int) -> list[Column]:
    """The columns that fit `width` cells (3 between columns) showing every value whole: the
    highest `drop` gives way first; columns of drop 0 always stay."""
    need = {c.key: max([len(c.label)] + [row[c.key].cell_len for row in rows]) for c in cols}
    keep = list(cols)
    for column in sorted(cols, key=lambda c: -c.drop):
        if sum(need[c.key] + 3 for c in keep) <= width or column.drop == 0:
            break
        keep.remove(column)
    return keep

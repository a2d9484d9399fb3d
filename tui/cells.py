"""What the runs table shows of a run: raw values (sorted on) and their texts (pure, no I/O)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from dinowm.formats import fmt_duration, fmt_num, fmt_time, slurm_text, status_text
from dinowm.rundir import ACTIVE

FRESH_S = 30.0  # a GPU sample older than this is not "now"
BAR = 6
STATUS_ORDER = {s: i for i, s in enumerate(("running", "resuming", "stopping", "pending",
                                           "created", "lost", "failed", "cancelled", "stopped",
                                           "completed"))}

# key, label, width: most useful first so that 80 columns show what matters.
RUN_COLUMNS = (("mark", " ", 1), ("status", "status", 11), ("name", "name", 8),
               ("epoch", "epoch", 8 + BAR), ("train", "train", 7), ("val", "val", 7),
               ("zbest", "z best", 7), ("zlast", "z last", 7), ("temp", "°C/max", 6),
               ("power", "W", 3), ("attempts", "att", 3), ("incidents", "inc", 3),
               ("duration", "duration", 8), ("start", "start", 16), ("preset", "preset", 6),
               ("id", "id", 20))
# Shown after the name once a run of the list is a Slurm job: 'job 12 RUNNING on gpu03'.
SLURM_COLUMN = ("slurm", "slurm", 5)


def columns(with_slurm: bool) -> tuple[tuple[str, str, int], ...]:
    """The runs table's columns; the Slurm one only where a cluster run is listed."""
    if not with_slurm:
        return RUN_COLUMNS
    at = [key for key, _, _ in RUN_COLUMNS].index("name") + 1
    return (*RUN_COLUMNS[:at], SLURM_COLUMN, *RUN_COLUMNS[at:])
RIGHT = {"train", "val", "zbest", "zlast", "temp", "power", "attempts", "incidents", "duration"}


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


def run_values(run: dict[str, Any], samples: list[dict[str, Any]], now: float,
               marked: bool = False) -> dict[str, Any]:
    """The raw value of every column for one run (summary row + its latest GPU samples)."""
    active = run["status"] in ACTIVE
    temp, power = gpu_now(samples, now) if active else (None, None)
    peak = max((t for t in (temp, run.get("max_gpu_temp_c")) if t is not None), default=None)
    start = run.get("started_at") or run.get("created_at")
    end = run.get("ended_at") or (now if active else None)
    return {"mark": marked, "status": run["status"], "name": run.get("name") or "-",
            "epoch": (run.get("epoch") or 0, run.get("epochs_target")),
            "train": run.get("last_train_loss"), "val": run.get("last_val_loss"),
            "zbest": run.get("best_z_err_pred"), "zlast": run.get("last_z_err_pred"),
            "temp": (temp, peak), "power": power if power is not None
            else run.get("last_mean_power_w"), "attempts": run.get("attempts") or 0,
            "incidents": run.get("incident_count") or 0,
            "duration": end - start if start and end else None, "start": start,
            "preset": run.get("preset") or "-", "id": run["id"], "slurm": slurm_text(run)}


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


def run_texts(values: dict[str, Any]) -> dict[str, Text]:
    """The cell text of every column, from run_values()."""
    temp, peak = values["temp"]
    temp_text = Text()
    temp_text.append("-" if temp is None else f"{temp:.0f}", style=temp_style(temp))
    temp_text.append("/")
    temp_text.append("-" if peak is None else f"{peak:.0f}", style=temp_style(peak))
    power = values["power"]
    incidents = values["incidents"]
    return {
        "mark": Text("●" if values["mark"] else " ", style="bold magenta"),
        "status": status_text(values["status"]), "name": Text(values["name"]),
        "epoch": progress_bar(*values["epoch"]),
        **{k: Text(fmt_num(values[k])) for k in ("train", "val", "zbest", "zlast")},
        "temp": temp_text, "power": Text("-" if power is None else f"{power:.0f}"),
        "attempts": Text(str(values["attempts"])),
        "incidents": Text(str(incidents), style="yellow" if incidents else ""),
        "duration": Text(fmt_duration(values["duration"])),
        "start": Text(fmt_time(values["start"])), "preset": Text(values["preset"]),
        "id": Text(values["id"], style="dim"),
        "slurm": Text(values["slurm"] or "-", style="" if values["slurm"] else "dim"),
    }


def matches(run: dict[str, Any], text: str, status: str) -> bool:
    """The filter: status ('all', 'active' or one status) and a substring of id/name/preset."""
    if status == "active" and run["status"] not in ACTIVE:
        return False
    if status not in ("all", "active") and run["status"] != status:
        return False
    needle = text.strip().lower()
    if not needle:
        return True
    hay = " ".join(str(run.get(k) or "") for k in ("id", "name", "preset", "status", "env",
                                                   "slurm_job_id", "slurm_state"))
    return needle in hay.lower()

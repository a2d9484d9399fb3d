# SPDX-License-Identifier: MIT
"""Progress, the epoch log, the commands to start and resume, and the dated notes of a run."""

from __future__ import annotations

import functools
import json
import os
import shlex
from typing import Any

from dinowm import rundir
from dinowm.export.markdown import Ctx, cell, fence, foreign, integer, table, table_head
from dinowm.export.record import RunRecord
from dinowm.export.svg import curve_name, has_curve
from dinowm.formats import fmt_duration, fmt_num
from dinowm.rundir import ACTIVE

EPOCH_TAGS = {
    "oom": "⚠️ OOM",
    "stall": "⚠️ Freeze",
    "crash": "💥 Crash",
    "exception": "💥 Exception",
    "disk_full": "💥 Disk full",
    "config": "💥 Config",
    "lost": "❓ Lost",
    "gpu_lost": "💥 GPU lost",
}


def at_epoch(rows: list[dict[str, Any]], key: str, pick: Any = None) -> tuple[Any, Any]:
    """(value, epoch) of the last epoch with a value, or of the first pick (min, max) of all."""
    if pick is None:
        return next(
            ((r[key], r["epoch"]) for r in reversed(rows) if r[key] is not None), (None, None)
        )
    values = [r[key] for r in rows]
    have = [v for v in values if v is not None]
    if not have:
        return None, None
    best = pick(have)  # the first of equal values, as the epoch order has them
    return best, rows[values.index(best)]["epoch"]  # index() matches by identity first: NaN too


def _with_epoch(pair: tuple[Any, Any]) -> str | None:
    value, epoch = pair
    return None if value is None else f"{fmt_num(value)} (Epoch {epoch})"


def progress(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 4. Training progress: the current status, the loss curve and the epoch log."""
    out = [
        f"## {ctx('h_progress')}",
        "",
        f"### {ctx('h_status')}",
        "",
        *table([ctx("metric"), ctx("value")], _status_rows(ctx, rec)),
    ]
    if has_curve(rec):
        out += ["", f"![{ctx('loss_curve')}]({curve_name(ctx.doc, rec.id)})"]
    sample = _latest_sample(ctx, rec)
    if sample:
        out += ["", sample]
    out += ["", f"### {ctx('h_epoch_log')}", ""]
    rollout = [ctx("rollout_column")] if rec.rollouts else []
    out += table_head(
        [
            "Epoch",
            "Train Loss",
            "Val Loss",
            "z_err_pred",
            *rollout,
            ctx("date"),
            ctx("duration"),
            "Max GPU °C",
            ctx("mean_power"),
            ctx("notes"),
        ],
        "rrrr" + "r" * len(rollout) + "lrrrl",
    )
    out += _epoch_lines(ctx, rec)
    if rec.gpus:  # a run on several GPUs: each GPU's epoch
        out += _gpus_per_epoch(ctx, rec)
    return out


def _status_rows(ctx: Ctx, rec: RunRecord) -> list[tuple[str, Any]]:
    """The current status: epoch, step, losses (the last and the best), speed, peaks; the
    rollout errors where the trainer measured them; phase and ETA while the run is active."""
    run, epochs = rec.run, rec.epochs
    micro, accum = run.get("micro_batch"), run.get("grad_accum")
    batch = run.get("batch_size")
    if batch is not None and micro is not None:
        batch = f"{batch} (Micro-Batch {micro} × grad_accum {accum})"
    rows: list[tuple[str, Any]] = [
        (ctx("current_epoch"), f"{run.get('epoch')} / {run.get('epochs_target') or '-'}"),
        (ctx("batches_per_epoch"), integer(run.get("batches_per_epoch"))),
        ("Batch Size", batch),
        (ctx("step"), integer(run.get("step"))),
        ("Train Loss", _with_epoch(at_epoch(epochs, "train_loss"))),
        ("Val Loss", _with_epoch(at_epoch(epochs, "val_loss"))),
        ("z_err_pred", _with_epoch(at_epoch(epochs, "z_err_pred"))),
        (ctx("best_val_loss"), _with_epoch(at_epoch(epochs, "val_loss", min))),
        (ctx("best_z_err_pred"), _with_epoch(at_epoch(epochs, "z_err_pred", min))),
        ("Samples/s", _with_epoch(at_epoch(epochs, "samples_per_s"))),
        (ctx("peak_gpu_mem"), _peak(at_epoch(epochs, "peak_gpu_mem_mib", max), " MiB")),
        (ctx("max_gpu_temp"), _peak(at_epoch(epochs, "max_gpu_temp_c", max), " °C")),
    ]
    if rec.rollouts:  # the trainer's open-loop rollout error, where it measured one
        rolls = [
            {
                "epoch": epoch,
                **{k: values.get(f"{k}_z_visual_err_rollout") for k in ("val", "train")},
            }
            for epoch, values in sorted(rec.rollouts.items())
        ]
        rows[7:7] = [
            (ctx("val_rollout"), _with_epoch(at_epoch(rolls, "val"))),
            (ctx("train_rollout"), _with_epoch(at_epoch(rolls, "train"))),
        ]
        rows.insert(11, (ctx("best_val_rollout"), _with_epoch(at_epoch(rolls, "val", min))))
    if run["status"] in ACTIVE:
        rows += _live_rows(ctx, run)
    return rows


def _live_rows(ctx: Ctx, run: dict[str, Any]) -> list[tuple[str, Any]]:
    """An active run's phase, last step loss and ETA."""
    eta = run.get("eta_s")
    return [
        ("Phase", foreign(run["phase"]) if run.get("phase") else None),
        (
            ctx("last_step_loss"),
            fmt_num(run.get("last_loss")) if run.get("last_loss") is not None else None,
        ),
        (
            "ETA",
            None
            if eta is None
            else f"{fmt_duration(eta)} ({ctx('eta_at')} {ctx.time(ctx.now + eta)})",
        ),
    ]


def _gpus_per_epoch(ctx: Ctx, rec: RunRecord) -> list[str]:
    """A run on several GPUs: each GPU's temperature, power, use and memory per epoch."""
    return [
        "",
        f"### {ctx('h_gpus_per_epoch')}",
        "",
        *table(
            ["Epoch", "GPU", "Max °C", ctx("mean_power"), ctx("mean_util"), ctx("max_mem")],
            (
                (
                    epoch,
                    g.get("gpu"),
                    _round(g.get("max_temp_c")),
                    _round(g.get("mean_power_w")),
                    _round(g.get("mean_util")),
                    _round(g.get("max_mem_mib")),
                )
                for epoch, gpus in rec.gpus
                for g in gpus
            ),
            "rrrrrr",
        ),
    ]


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def _peak(pair: tuple[Any, Any], unit: str) -> str | None:
    value, epoch = pair
    return None if value is None else f"{value:,.0f}{unit} (Epoch {epoch})"


def _latest_sample(ctx: Ctx, rec: RunRecord) -> str | None:
    """A link to the newest reconstruction grid (true | reconstruction | prediction)."""
    if rec.folder != "ok" or not rec.epochs or rec.run_dir is None:
        return None
    if rec.values.get("model.decoder") == "off":
        return ctx("no_decoder")
    epoch = rec.epochs[-1]["epoch"]
    path = rundir.sample_path(rec.run_dir, epoch)
    if not path.is_file():
        return None
    link = os.path.relpath(path, ctx.folder)
    return f"{ctx('latest_samples', epoch=epoch)}: [{path.name}]({link})"


def _epoch_lines(ctx: Ctx, rec: RunRecord) -> list[str]:
    """One table line per epoch; notes and incidents go to the epoch whose span holds them.

    Written without the generic table(): 1,000 runs of 100 epochs are 100,000 of these lines,
    so the usual line is one %-format with the values read once.
    """
    events = sorted(
        [(n["t"], foreign(n["text"])) for n in rec.notes]
        + [(i["t"], EPOCH_TAGS[i["kind"]]) for i in rec.incidents if i["kind"] in EPOCH_TAGS]
        + [
            (i["t"], "🌡️ " + ctx("thermal_pause"))
            for i in rec.incidents
            if i["kind"] == "thermal" and "paus" in i["summary"]
        ]
    )
    lines: list[str] = []
    append, when, n_events = lines.append, ctx.time, len(events)
    k, attempt, rollouts = 0, None, rec.rollouts
    for e in rec.epochs:
        end = e["ended_at"] or e["started_at"]
        items: list[str] = []
        while k < n_events and end is not None and events[k][0] <= end:
            items.append(events[k][1])
            k += 1
        now = e["attempt"]
        if now is not None:
            if attempt is not None and now != attempt:
                items.insert(0, ctx("attempt_n", n=now))
            attempt = now
        train, val, z = e["train_loss"], e["val_loss"], e["z_err_pred"]
        took, temp, power = e["duration_s"], e["max_gpu_temp_c"], e["mean_power_w"]
        losses = _losses(train, val, z)
        if rollouts:
            losses += " | " + _rollout(rollouts.get(e["epoch"]))
        took_s = "-" if took is None else _seconds(round(took))
        temp_s = "-" if temp is None else round(temp)
        power_s = "-" if power is None else round(power)
        note = cell("; ".join(items)) if items else ""
        append(
            f"| {int(e['epoch'])} | {losses} | {when(end)} | {took_s} | {temp_s} | {power_s} "
            f"| {note} |"
        )
    return lines


def _losses(train: float | None, val: float | None, z: float | None) -> str:
    """'0.4123 | 0.3561 | 0.2711' as fmt_num writes them, in one step for the usual range."""
    if (
        train is not None
        and val is not None
        and z is not None
        and 1e-3 <= train < 1e5
        and 1e-3 <= val < 1e5
        and 1e-3 <= z < 1e5
    ):
        return f"{train:.4g} | {val:.4g} | {z:.4g}"
    return f"{fmt_num(train)} | {fmt_num(val)} | {fmt_num(z)}"


def _rollout(values: dict[str, Any] | None) -> str:
    """'0.41 / 0.52': the val rollout error from num_hist frames and from one frame."""
    values = values or {}
    horizon = values.get("val_z_visual_err_rollout")
    one = values.get("val_z_visual_err_rollout_1framestart")
    if horizon is None and one is None:
        return "-"
    return f"{fmt_num(horizon)} / {fmt_num(one)}"


@functools.lru_cache(maxsize=4096)
def _seconds(seconds: int) -> str:
    """fmt_duration of whole seconds; epochs of a run last about as long as each other."""
    return fmt_duration(seconds)


def commands(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 5. The command that started the run, and the one that resumes it."""
    run = rec.run
    cd = [f"cd {shlex.quote(run['cwd'])}"] if run.get("cwd") else []
    start = run.get("command") or ctx("no_command")
    resume = [f"# {ctx('resume_comment')}", *cd, f"dinowm resume {run['id']}"]
    target = run.get("epochs_target")
    if run["status"] == "completed" and target and (run.get("epoch") or 0) >= target:
        resume += [
            f"# {ctx('resume_further', done=run['epoch'], target=target)}",
            f"dinowm resume {run['id']} training.epochs={target + 50}",
        ]
    earlier = [
        i
        for i in rec.incidents
        if i["kind"] == "resume" and i["summary"].startswith("resumed by the user")
    ]
    for i in earlier:
        overrides = " ".join(_overrides(i))
        resume.append(
            f"# {ctx('ran_at', at=ctx.time(i['t']))} dinowm resume {run['id']}"
            + (f" {overrides}" if overrides else "")
        )
    return [
        f"## {ctx('h_start')}",
        "",
        *fence([*cd, start], "bash"),
        "",
        f"### {ctx('h_resume')}",
        "",
        *fence(resume, "bash"),
    ]


def _overrides(incident: dict[str, Any]) -> list[str]:
    try:
        details = json.loads(incident.get("details_json") or "{}")
    except ValueError:
        return []
    return [str(o) for o in details.get("overrides") or []]


def notes(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 7. Notes: every note of the run with its date (and source when not the user)."""
    out = [f"## {ctx('h_notes')}", ""]
    if not rec.notes:
        return [*out, ctx("no_notes", id=rec.id)]
    for n in rec.notes:
        by = "" if n.get("source") in (None, "user") else f" _({foreign(n['source'])})_"
        out.append(f"- **{ctx.time(n['t'])}:** {foreign(n['text'])}{by}")
    return out

# SPDX-License-Identifier: MIT
"""The first sections of a run's log: overview, system hardware, dataset parameters."""

from __future__ import annotations

from typing import Any

from dinowm.backends import backend_of
from dinowm.export.markdown import Ctx, code, foreign, gigabytes, integer, plain, table
from dinowm.export.record import RunRecord
from dinowm.formats import STATUS_STYLE, fmt_duration, literal
from dinowm.rundir import ACTIVE


def status(rec: RunRecord, reason: bool = True) -> str:
    """'✔ completed', '✘ failed: reason' (the CLI's symbols)."""
    run = rec.run
    symbol = STATUS_STYLE.get(run["status"], ("·", ""))[0]
    why = run.get("exit_reason") if reason else None
    more = f": {foreign(why)}" if why and why != run["status"] else ""
    return f"{symbol} {foreign(run['status'])}{more}"


def duration(ctx: Ctx, rec: RunRecord) -> float | None:
    """Wall time from the first start to the end (or to now while the run is active)."""
    run = rec.run
    start = run.get("started_at") or run.get("created_at")
    if not start:
        return None
    end = run.get("ended_at") or (ctx.now if run["status"] in ACTIVE else None)
    return None if end is None else end - start


def overview(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## Experiment overview: id, name, dates, status, wandb, folder, checkpoints."""
    run = rec.run
    if run.get("wandb_url"):
        label = foreign(run.get("name") or run.get("wandb_id") or run["id"])
        wandb = f"[{label}]({_url(run['wandb_url'])})"
    elif run.get("wandb_id"):
        wandb = f"{code(run['wandb_id'])} ({ctx('wandb_offline')})"
    else:
        wandb = "-"
    folder = code(_dir(run["run_dir"])) if run.get("run_dir") else "-"
    if rec.folder == "gone":
        folder += f" ⚠️ {ctx('folder_gone')}"
    rows: list[tuple[str, Any]] = [
        (ctx("experiment_id"), code(run["id"])),
        (ctx("name"), foreign(run["name"]) if run.get("name") else None),
        ("Preset", code(run["preset"]) if run.get("preset") else None),
        ("Env", code(run["env"]) if run.get("env") else None),
        (ctx("start_date"), ctx.time(run.get("started_at") or run.get("created_at"), seconds=True)),
        (ctx("end_date"), ctx.time(run.get("ended_at"), seconds=True)),
        (ctx("duration"), fmt_duration(duration(ctx, rec))),
        ("Status", status(rec)),
        (ctx("attempts"), run.get("attempts")),
        ("Encoder", _encoder(ctx, run.get("encoder_label"))),
        ("WandB Run", wandb),
        *_placement(run),
        (ctx("run_folder"), folder),
        (
            ctx("checkpoint_path"),
            code(_dir(f"{run['run_dir']}/checkpoints")) if run.get("run_dir") else None,
        ),
        (ctx("latest_checkpoint"), _latest_checkpoint(ctx, rec)),
        ("Config-Hash", code(run["config_hash"]) if run.get("config_hash") else None),
    ]
    return [
        f"## {ctx('h_overview')}",
        "",
        *table([ctx("field"), ctx("value")], ((f"**{k}**", v) for k, v in rows)),
    ]


def _placement(run: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """('Slurm', 'job 12 COMPLETED') for a run with a placement to show; none for a local run."""
    backend = backend_of(run)
    where = backend.placement(run)
    return ((backend.where, foreign(where)),) if where else ()


def _dir(path: str) -> str:
    return path.rstrip("/") + "/"


def _url(url: str) -> str:
    """A link's target: spaces, parentheses and angle brackets would end or break it."""
    return literal(url).translate({ord(c): f"%{ord(c):02X}" for c in " ()<>"})


def _encoder(ctx: Ctx, label: str | None) -> str | None:
    if label and "untrained" in label:
        return f"{foreign(label)} ⚠️ {ctx('untrained_warning')}"
    return None if label is None else foreign(label)


def _latest_checkpoint(ctx: Ctx, rec: RunRecord) -> str | None:
    if not rec.checkpoints:
        return None
    c = rec.checkpoints[-1]
    name = str(c["path"]).rsplit("/", 1)[-1]
    size = f", {c['size'] / 2**20:.1f} MiB" if c.get("size") is not None else ""
    sha = f", sha256 {code(c['sha256'][:12])}" if c.get("sha256") else ""
    step = integer(c.get("step"))
    return f"{code(name)} (Epoch {c.get('epoch')}, {ctx('step')} {step}{size}{sha})"


def hardware(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 0. System hardware: GPU, CPU, RAM and software tables."""
    hw = rec.hardware
    head = [f"## {ctx('h_hardware')}", ""]
    if hw is None:
        return [*head, ctx("no_hardware")]
    gpus = _gpu_rows(ctx, hw)
    world = (rec.start or {}).get("world_size") or 1
    if world > 1:  # only a run on several ranks says so: one-rank logs read as before
        gpus.append(
            (
                "Ranks",
                f"{world} (torchrun, DistributedDataParallel, "
                f"{str((rec.start or {}).get('device') or '?').split(':')[0]})",
            )
        )
    cores = None
    if hw.get("cpu_cores") is not None:
        cores = ctx("cores_threads", cores=hw["cpu_cores"], threads=hw.get("cpu_threads"))
    cpu = [
        (ctx("model"), foreign(hw.get("cpu_model"))),
        (ctx("cores"), cores),
        ("Sockets", hw.get("cpu_sockets")),
        (ctx("max_clock"), _ghz(hw.get("cpu_max_mhz"))),
        (ctx("min_clock"), _ghz(hw.get("cpu_min_mhz"))),
    ]
    ram = [
        ("Total", gigabytes(hw.get("ram_total_mib"))),
        (ctx("available"), gigabytes(hw.get("ram_available_mib"), approx=True)),
        ("Swap", gigabytes(hw.get("swap_total_mib"))),
    ]
    software = [
        ("Python", foreign(hw.get("python"))),
        ("torch", foreign(hw.get("torch"))),
        (ctx("platform"), foreign(hw.get("platform"))),
        ("Host", foreign(hw.get("hostname"))),
    ]
    out = head
    for title, rows in (("GPU", gpus), ("CPU", cpu), ("RAM", ram), ("Software", software)):
        out += [
            f"### {title}",
            *table([ctx("field"), ctx("value")], ((f"**{k}**", v) for k, v in rows)),
            "",
        ]
    return out[:-1]


def _gpu_rows(ctx: Ctx, hw: dict[str, Any]) -> list[tuple[str, Any]]:
    if not hw.get("gpu_name"):
        reason = str(hw.get("nvml") or "").removeprefix("unavailable: ")
        return [
            (
                ctx("model"),
                ctx("no_gpu") + (f" ({foreign(reason)})" if reason and reason != "ok" else ""),
            )
        ]
    vram = hw.get("gpu_vram_mib")
    rows: list[tuple[str, Any]] = [
        (ctx("model"), foreign(hw["gpu_name"])),
        ("VRAM Total", None if vram is None else f"{vram:,} MiB (~{vram / 1024:.0f} GB)"),
        ("Driver Version", foreign(hw.get("driver"))),
        ("CUDA Version", foreign(hw.get("cuda"))),
    ]
    if (hw.get("gpu_count") or 0) > 1:
        rows.insert(1, (ctx("gpu_count"), hw["gpu_count"]))
    return rows


def _ghz(mhz: float | None) -> str | None:
    return None if mhz is None else f"{mhz / 1000:.1f} GHz"


def dataset(ctx: Ctx, rec: RunRecord) -> list[str]:
    """## 1. Dataset parameters: the config's data keys and what the trainer found on disk."""
    info = (rec.start or {}).get("dataset") or {}
    rows = _dataset_rows(ctx, rec.values, info)
    if info.get("skipped_episodes"):
        rows.append(
            ("skipped_episodes", ", ".join(map(str, info["skipped_episodes"])), ctx("d_skipped"))
        )
    out = [f"## {ctx('h_dataset')}", ""]
    if rec.start is None:
        out += [f"> {ctx('no_start_event', why=_why_no_start(ctx, rec))}", ""]
    out += table(
        ["Parameter", ctx("value"), ctx("description")], ((code(k), val, d) for k, val, d in rows)
    )
    for warning in info.get("warnings") or []:
        out.append(f"- ⚠️ {foreign(warning)}")
    return out


def _dataset_rows(ctx: Ctx, v: dict[str, Any], info: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, value, description) of each data key, the value with what the trainer found."""
    episodes = info.get("episodes")
    n_rollouts = v.get("data.n_rollouts")
    if n_rollouts == 0 and episodes is not None:
        n_rollouts = f"0 ({ctx('all')}: {episodes})"
    lengths = info.get("lengths") or {}
    ratio = v.get("data.split_ratio")
    path = code(v["data.path"]) if v.get("data.path") else None
    if path and v.get("data.synthetic"):
        path += f" ({ctx('synthetic')})"
    return [
        ("env", _code(v.get("env")), ctx("d_env")),
        ("data_path", path, ctx("d_path")),
        ("layout", _code(info.get("layout") or v.get("data.layout")), ctx("d_layout")),
        ("n_rollouts", n_rollouts, ctx("d_n_rollouts")),
        ("episodes", _episode_split(info), ctx("d_episodes")),
        ("slices", _slices(info), ctx("d_slices")),
        (
            "max_timesteps",
            lengths.get("max"),
            ctx("d_max_timesteps_range", min=lengths["min"], mean=lengths["mean"])
            if "min" in lengths and "mean" in lengths
            else ctx("d_max_timesteps"),
        ),
        ("state_dim", info.get("state_dim"), ctx("d_state_dim")),
        ("proprio_dim", info.get("proprio_dim"), ctx("d_proprio_dim")),
        ("action_dim", _action_dim(ctx, v, info), ctx("d_action_dim")),
        ("image_size", _image_size(v, info), ctx("d_image_size")),
        (
            "split_ratio",
            plain(ratio) if ratio is not None else None,
            ctx("d_split_ratio", train=round(ratio * 100), val=100 - round(ratio * 100))
            if ratio is not None
            else "",
        ),
        ("split_seed", v.get("data.split_seed"), ctx("d_split_seed")),
        ("normalize_action", v.get("data.normalize_action"), ctx("d_normalize_action")),
        ("num_workers", v.get("data.num_workers"), ctx("d_num_workers")),
    ]


def _episode_split(info: dict[str, Any]) -> str | None:
    """'120 (Train 108 / Val 12)': the episodes and how they were split."""
    episodes = info.get("episodes")
    train_eps, val_eps = info.get("train_episodes"), info.get("val_episodes")
    if episodes is not None and train_eps is not None and val_eps is not None:
        return f"{episodes} (Train {len(train_eps)} / Val {len(val_eps)})"
    return None


def _slices(info: dict[str, Any]) -> str | None:
    """The training and validation slices the trainer cut from the episodes."""
    if info.get("train_slices") is not None:
        return f"{integer(info['train_slices'])} Train / {integer(info.get('val_slices'))} Val"
    return None


def _image_size(v: dict[str, Any], info: dict[str, Any]) -> str | None:
    """The dataset's frames, the model's frames and the encoder's input, as sizes."""
    size = info.get("image_size")
    if size and v.get("model.img_size"):
        return (
            f"{size[0]}×{size[1]} → {v['model.img_size']}×{v['model.img_size']} "
            f"(Encoder {v.get('model.encoder_img_size')}×{v.get('model.encoder_img_size')})"
        )
    return None


def _action_dim(ctx: Ctx, v: dict[str, Any], info: dict[str, Any]) -> Any:
    """The dataset's action width, with the width of a sample's action (× frameskip)."""
    action = info.get("action_dim")
    if action is not None and info.get("sample_action_dim") is not None:
        action = (
            f"{action} ({info['sample_action_dim']} {ctx('per_sample')}: {action} × "
            f"frameskip {v.get('frameskip')})"
        )
    return action


def _code(value: Any) -> str | None:
    return None if value in (None, "") else code(value)


def _why_no_start(ctx: Ctx, rec: RunRecord) -> str:
    if rec.folder == "gone":
        return ctx("why_folder_gone", path=foreign(rec.run.get("run_dir")))
    if rec.folder == "none":
        return ctx("why_no_folder")
    return ctx("why_not_started")

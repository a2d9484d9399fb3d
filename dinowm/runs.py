# SPDX-License-Identifier: MIT
"""The run's record outside its supervisor, wherever it runs: resolve and create, resume checks
(under the run's lock). Where a run runs (start, stop, lost) is its backend's: dinowm.backends."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dinowm import rundir
from dinowm.config import (
    Project,
    Resolved,
    config_hash,
    data_path,
    dinov2_weights_path,
    flat_values,
    from_dict,
    model_hash,
    resolve,
    to_dict,
    with_values,
)
from dinowm.errors import ConfigError, DinowmError, NotFoundError
from dinowm.rundir import RunLock, read_spec, write_spec
from dinowm.schema import RunConfig, all_keys
from dinowm.store import Store
from dinowm.supervise import hardware
from dinowm.supervise.procinfo import ProcessRef


def new_run_id() -> str:
    """'20260107-093348-1a2b': sortable by start, unique across processes."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def encoder_label(cfg: RunConfig) -> str:
    """How the encoder is reported everywhere (an untrained test encoder says so)."""
    if cfg.model.encoder == "tiny":
        return "tiny ViT (random init, untrained)"
    return "DINOv2 ViT-S/14 (pretrained, frozen)"


def preflight(cfg: RunConfig) -> None:
    """Errors a run would hit in its first seconds, found before anything is written."""
    d = cfg.data
    if not d.synthetic and not data_path(cfg).is_dir():
        raise ConfigError(
            f"data.path={d.path} does not exist; fix the path, or set "
            f"data.synthetic=true to generate the built-in synthetic data there."
        )
    if cfg.model.encoder == "dinov2_vits14":
        weights = dinov2_weights_path(cfg.model.encoder_weights)
        if not weights.is_file():
            raise ConfigError(
                f"DINOv2 weights not found at {weights}: download https://dl.fbaipublicfiles.com"
                f"/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth there, or set "
                f"model.encoder_weights=PATH (model.encoder=tiny trains an untrained encoder)."
            )


def fit_warning(store: Store, cfg: RunConfig, hw: dict[str, Any]) -> str | None:
    """A warning when `dinowm probe` found this micro-batch too big for this GPU model."""
    if not hw.get("gpu_name"):
        return None
    trials = [
        p for p in store.probes(hw["gpu_name"], model_hash(cfg)) if p["batch"] == cfg.micro_batch
    ]
    if not trials or trials[0]["fits"]:
        return None
    fitting = [p["batch"] for p in store.probes(hw["gpu_name"], model_hash(cfg)) if p["fits"]]
    largest = f"; the largest that fits is {max(fitting)}" if fitting else ""
    peak = trials[0]["peak_mib"]
    seen = f" (peak {peak / 1024:.1f} GiB)" if peak else ""
    return (
        f"micro-batch {cfg.micro_batch} did not fit {hw['gpu_name']} in 'dinowm probe'"
        f"{seen}{largest}; watchdog.oom={cfg.watchdog.oom} applies if it runs out of "
        f"memory"
    )


def gpu_ranks(value: str, env: dict[str, str] | None = None) -> int:
    """`--gpus N|auto`: the number of ranks, one per visible GPU; refused without a GPU."""
    from dinowm.supervise.hardware import gpu_description
    from dinowm.supervise.telemetry import visible_gpus

    env = dict(os.environ) if env is None else env
    desc = gpu_description()
    visible = len(visible_gpus(env, [g["uuid"] for g in desc["gpus"]]))
    if value != "auto" and (not value.isdigit() or int(value) < 1):
        raise ConfigError(f"--gpus {value}: give a number of GPUs (1, 2, ...) or 'auto'.")
    if visible == 0:
        raise ConfigError(
            f"--gpus {value}: no GPU is visible on this machine (NVML: "
            f"{desc.get('nvml')}); on the CPU, dist.nproc_per_node=N trains N gloo "
            f"ranks."
        )
    wanted = visible if value == "auto" else int(value)
    if wanted > visible:
        raise ConfigError(
            f"--gpus {value}: only {visible} GPU{'s' * (visible != 1)} visible "
            f"(CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', 'unset')}"
            f"); use --gpus {visible} or --gpus auto."
        )
    return wanted


def resolve_run(
    project: Project, preset: str | None, overrides: list[str] | tuple[str, ...]
) -> Resolved:
    """The configuration a new run would train with, checked as far as it can be without
    reading the dataset (that is `dinowm.trials.check_dataset_files`, a child process)."""
    resolved = resolve(project, preset, overrides)
    preflight(resolved.config)
    return resolved


def create_run(
    project: Project,
    resolved: Resolved,
    name: str | None = None,
    note: str | None = None,
    argv: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
    *,
    run_id: str | None = None,
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the run folder, config.json, the runs row and the hardware row of a resolved run.

    The queue passes the run id it claimed for an entry and `origin` (queue_entry, sweep_id),
    which the spec and the row both keep.
    """
    hw = hardware.describe()
    run_id = run_id or new_run_id()
    origin = {k: v for k, v in (origin or {}).items() if v is not None}
    run_dir = project.outputs / run_id
    command = (
        shlex.join(argv)
        if argv
        else shlex.join(["dinowm", "run", "--preset", resolved.preset, *resolved.overrides])
    )
    with Store(project.runs_db) as store:
        count = store.count_runs(resolved.preset)
        name = name or f"{resolved.preset}-{count + 1}"
        run_dir.mkdir(parents=True, exist_ok=False)
        write_spec(run_dir, _spec(resolved, run_id, name, command, origin))
        store.create_run(_row(resolved, run_id, name, command, run_dir, origin))
        store.set_hardware(run_id, hw)
        warning = fit_warning(store, resolved.config, hw)
        if warning and warn:
            warn(warning)
        if note:
            store.add_note(run_id, note)
        return store.run(run_id)


def _spec(
    resolved: Resolved, run_id: str, name: str, command: str, origin: dict[str, Any]
) -> dict[str, Any]:
    """The run's config.json: what it trains with, how it was asked for, where it came from."""
    cfg = resolved.config
    return {
        "run_id": run_id,
        "name": name,
        "preset": resolved.preset,
        "overrides": list(resolved.overrides),
        "changed": resolved.changed(),
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "command": command,
        "created_at": time.time(),
        **origin,
    }


def _row(
    resolved: Resolved,
    run_id: str,
    name: str,
    command: str,
    run_dir: Path,
    origin: dict[str, Any],
) -> dict[str, Any]:
    """The run's new row in runs.db."""
    cfg = resolved.config
    return {
        "id": run_id,
        "name": name,
        "preset": resolved.preset,
        "env": cfg.env,
        "config_json": json.dumps(to_dict(cfg)),
        "config_hash": config_hash(cfg),
        "overrides_json": json.dumps(list(resolved.overrides)),
        "command": command,
        "cwd": os.getcwd(),
        "run_dir": str(run_dir),
        "epochs_target": cfg.training.epochs,
        "batch_size": cfg.training.batch_size,
        "grad_accum": cfg.training.grad_accum,
        "micro_batch": cfg.micro_batch,
        "host": socket.gethostname(),
        "encoder_label": encoder_label(cfg),
        "changed_json": json.dumps(resolved.changed()),
        **origin,
    }


def new_run(
    project: Project,
    preset: str | None,
    overrides: list[str] | tuple[str, ...],
    *,
    gpus: str | None = None,
    name: str | None = None,
    note: str | None = None,
    argv: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], RunLock]:
    """Everything before a new run's supervisor starts, as `dinowm run` and the TUI do it:
    resolve (with `--gpus N|auto` as dist.nproc_per_node), check the dataset files (the
    trainer's own check, in a child process), write the run, and take its lock for the
    supervisor."""
    from dinowm.trials import check_dataset_files

    if gpus is not None:
        overrides = (*overrides, f"dist.nproc_per_node={gpu_ranks(gpus)}")
    resolved = resolve_run(project, preset, overrides)
    check_dataset_files(resolved.config)  # bad files are refused before a run exists
    row = create_run(project, resolved, name=name, note=note, argv=argv, warn=warn)
    return row, rundir.claim(row["run_dir"], row["id"])


def resumed_spec(
    run_dir: Path, overrides: list[str] | tuple[str, ...], project: Project
) -> tuple[dict[str, Any], RunConfig]:
    """A run's config.json with resumable keys changed (epochs, batch, ...); others are refused.

    Nothing is written: the caller writes the spec once every check has passed.
    """
    spec = read_spec(run_dir)
    cfg = from_dict(spec["config"])
    if not overrides:
        return spec, cfg
    changes: dict[str, Any] = {}
    resumable = {name: key.resumable for name, key in all_keys().items()}
    resolved = resolve(project, spec.get("preset"), list(overrides))  # validates the syntax
    new_values = flat_values(resolved.config)
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not resumable.get(key):
            raise ConfigError(
                f"{key} cannot change on resume (it shapes the model or the data); "
                f"start a new run with 'dinowm run' instead."
            )
        changes[key.replace(".", "__")] = new_values[key]
    cfg = with_values(cfg, **changes)
    spec = {
        **spec,
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "resume_overrides": [*spec.get("resume_overrides", []), *overrides],
    }
    return spec, cfg


def prepare_resume(
    store: Store,
    project: Project,
    ref: str,
    overrides: list[str] | tuple[str, ...],
    by: str = "the user",
    *,
    fields: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], RunLock]:
    """Take the run's supervisor lock, check that RUN can resume, apply resumable overrides.

    Returns the updated row and the held lock, which the caller hands to the supervisor. A run
    with a live supervisor is refused before anything is written: no incident, no status.
    `fields` are written with the status change (a backend's columns that no longer hold).
    """
    run = store.run(ref)
    run_dir = Path(run["run_dir"])
    if not (run_dir / rundir.SPEC).is_file():
        raise NotFoundError(f"Run folder {run_dir} of {run['id']} is missing; it cannot resume.")
    lock = rundir.claim(run_dir, run["id"])
    try:
        row = _resume_locked(store, project, store.run(run["id"]), overrides, by, fields or {})
    except BaseException:
        lock.release()
        raise
    return row, lock


def _resume_locked(
    store: Store,
    project: Project,
    run: dict[str, Any],
    overrides: list[str] | tuple[str, ...],
    by: str,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    run_dir = Path(run["run_dir"])
    spec, cfg = resumed_spec(run_dir, overrides, project)
    if run["status"] == "completed" and run["epoch"] >= cfg.training.epochs:
        raise DinowmError(
            f"Run {run['id']} already completed {run['epoch']}/"
            f"{cfg.training.epochs} epochs; train further with 'dinowm resume "
            f"{run['id']} training.epochs={cfg.training.epochs + 50}'."
        )
    if run.get("pid") and run.get("host") == socket.gethostname():
        from dinowm.supervise.procinfo import kill_tree

        trainer = ProcessRef(run["pid"], run.get("pid_start") or -1)
        if trainer.alive():  # an orphan of a lost supervisor: never two trainers on one folder
            kill_tree(run["pid"], None, grace_s=30.0)
    other = rundir.holder(rundir.trainer_lock(run_dir))
    if other is not None:
        raise rundir.LockHeld(
            f"A trainer ({other.describe()}) runs in {run_dir} without a "
            f"supervisor; stop it (kill {other.pid}) and resume again.",
            other,
        )
    write_spec(run_dir, spec)
    # One write with the status: a reader in between never sees 'created' with stale fields
    store.update_run(
        run["id"],
        **fields,
        status="created",
        epochs_target=cfg.training.epochs,
        resume_overrides_json=json.dumps(spec.get("resume_overrides", [])),
        batch_size=cfg.training.batch_size,
        grad_accum=cfg.training.grad_accum,
        micro_batch=cfg.micro_batch,
        config_json=json.dumps(to_dict(cfg)),
        config_hash=config_hash(cfg),
        stop_requested_at=None,
        ended_at=None,
        exit_reason=None,
        created_at=run["created_at"],
    )
    store.add_incident(
        run["id"],
        "resume",
        f"resumed by {by}" + (f" with {' '.join(overrides)}" if overrides else ""),
        {"overrides": list(overrides)},
        attempt=run.get("attempts"),
    )
    return store.run(run["id"])

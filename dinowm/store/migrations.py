# SPDX-License-Identifier: MIT
"""Schema of runs.db as an ordered list of migrations, applied when a Store opens."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("dinowm")


def _script(db: sqlite_utils.Database, sql: str) -> None:
    """Run statements one by one: executescript() would COMMIT the enclosing transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


@MIGRATIONS()
def m001_initial(db: sqlite_utils.Database) -> None:
    """Runs, hardware, epochs, telemetry, incidents, notes, checkpoints."""
    _script(
        db,
        """
    create table runs (
        id text primary key,
        name text,
        preset text,
        status text not null,
        env text,
        config_json text not null,
        config_hash text not null,
        overrides_json text,
        command text,
        cwd text,
        run_dir text,
        created_at real not null,
        started_at real,
        ended_at real,
        updated_at real,
        epochs_target integer,
        epoch integer not null default 0,
        step integer not null default 0,
        batches_per_epoch integer,
        batch_size integer,
        pid integer,
        pid_start integer,
        supervisor_pid integer,
        supervisor_start integer,
        host text,
        attempts integer not null default 0,
        exit_reason text,
        wandb_id text,
        wandb_url text,
        encoder_label text,
        last_heartbeat real,
        last_seq integer not null default 0
    );
    create index runs_created on runs(created_at);
    create index runs_status on runs(status);
    create table hardware (
        run_id text primary key references runs(id) on delete cascade,
        collected_at real,
        hostname text,
        platform text,
        python text,
        torch text,
        nvml text,
        driver text,
        cuda text,
        gpu_name text,
        gpu_count integer,
        gpu_vram_mib integer,
        gpus_json text,
        cpu_model text,
        cpu_cores integer,
        cpu_threads integer,
        cpu_sockets integer,
        cpu_max_mhz real,
        cpu_min_mhz real,
        ram_total_mib integer,
        ram_available_mib integer,
        swap_total_mib integer
    );
    create table epochs (
        run_id text not null references runs(id) on delete cascade,
        epoch integer not null,
        attempt integer,
        train_loss real,
        val_loss real,
        z_err_pred real,
        metrics_json text,
        started_at real,
        ended_at real,
        duration_s real,
        steps integer,
        batch_size integer,
        samples_per_s real,
        peak_gpu_mem_mib real,
        max_gpu_temp_c real,
        mean_power_w real,
        mean_gpu_util real,
        seq integer,
        primary key (run_id, epoch)
    );
    create table telemetry (
        run_id text not null,
        t real not null,
        gpu integer not null,
        n integer not null default 1,
        temp_c real,
        temp_max_c real,
        power_w real,
        power_limit_w real,
        util_pct real,
        mem_used_mib real,
        mem_total_mib real,
        sm_clock_mhz real,
        fan_pct real,
        throttle integer,
        primary key (run_id, gpu, t)
    ) without rowid;
    create table incidents (
        id integer primary key,
        run_id text not null references runs(id) on delete cascade,
        t real not null,
        kind text not null,
        attempt integer,
        epoch integer,
        step integer,
        summary text not null,
        details_json text,
        seq integer
    );
    create index incidents_run on incidents(run_id, t);
    create unique index incidents_seq on incidents(run_id, seq) where seq is not null;
    create table notes (
        id integer primary key,
        run_id text not null references runs(id) on delete cascade,
        t real not null,
        text text not null,
        source text not null default 'user',
        edited_at real
    );
    create index notes_run on notes(run_id, t);
    create table checkpoints (
        run_id text not null references runs(id) on delete cascade,
        path text not null,
        kind text,
        epoch integer,
        step integer,
        sha256 text,
        size integer,
        t real,
        primary key (run_id, path)
    );
    """,
    )


@MIGRATIONS()
def m002_live_state(db: sqlite_utils.Database) -> None:
    """Live progress columns of a run and the stop request a second process can make."""
    for column, kind in (
        ("phase", "text"),
        ("last_loss", "real"),
        ("samples_per_s", "real"),
        ("eta_s", "real"),
        ("stop_requested_at", "real"),
        ("micro_batch", "integer"),
        ("grad_accum", "integer"),
    ):
        db.execute(f"alter table runs add column {column} {kind}")


@MIGRATIONS()
def m003_telemetry_counts(db: sqlite_utils.Database) -> None:
    """Per-field sample counts of aggregated telemetry rows (a reading may be missing)."""
    db.execute("alter table telemetry add column power_n integer")
    db.execute("alter table telemetry add column util_n integer")


@MIGRATIONS()
def m004_epoch_summary_index(db: sqlite_utils.Database) -> None:
    """Covering index for epoch tables (export-log, the TUI): skips the bulky metrics_json."""
    db.execute(
        "create index epochs_summary on epochs(run_id, epoch, attempt, train_loss, "
        "val_loss, z_err_pred, started_at, ended_at, duration_s, samples_per_s, "
        "peak_gpu_mem_mib, max_gpu_temp_c, mean_power_w)"
    )


@MIGRATIONS()
def m005_probes(db: sqlite_utils.Database) -> None:
    """`dinowm probe` trials: which batch fits which GPU for which model."""
    _script(
        db,
        """
    create table probes (
        id integer primary key,
        t real not null,
        gpu_name text not null,
        vram_mib integer,
        preset text,
        model_hash text not null,
        precision text,
        batch integer not null,
        peak_mib real,
        fits integer not null,
        status text,
        s_per_step real
    );
    create index probes_lookup on probes(gpu_name, model_hash, batch)
    """,
    )


@MIGRATIONS()
def m006_run_record_columns(db: sqlite_utils.Database) -> None:
    """What the log needs without reading run folders: value sources, resume overrides, and
    the trainer's latest start event (parameter counts, dataset)."""
    for column in ("changed_json", "resume_overrides_json", "start_json"):
        db.execute(f"alter table runs add column {column} text")


@MIGRATIONS()
def m007_epoch_gpus(db: sqlite_utils.Database) -> None:
    """Each epoch's summary per GPU (a run on several GPUs): temperature, power, use, memory."""
    db.execute("alter table epochs add column gpus_json text")
    # Only epochs of runs on several GPUs have it: a log finds them without a scan.
    db.execute(
        "create index epochs_gpus on epochs(run_id, epoch, gpus_json) where gpus_json is not null"
    )


@MIGRATIONS()
def m008_slurm(db: sqlite_utils.Database) -> None:
    """A run on a Slurm cluster: its job, the job's state as Slurm reports it, and how far the
    login node has read the run folder's events.jsonl and record.job.jsonl."""
    for column, kind in (
        ("slurm_job_id", "text"),
        ("slurm_state", "text"),
        ("slurm_reason", "text"),
        ("slurm_nodes", "text"),
        ("slurm_restarts", "integer"),
        ("events_offset", "integer"),
        ("job_record_offset", "integer"),
    ):
        db.execute(f"alter table runs add column {column} {kind}")


@MIGRATIONS()
def m009_slurm_telemetry(db: sqlite_utils.Database) -> None:
    """How far the login node has read a cluster run's telemetry.job.jsonl."""
    db.execute("alter table runs add column telemetry_offset integer")


@MIGRATIONS()
def m010_evaluations(db: sqlite_utils.Database) -> None:
    """`dinowm eval`: one row per evaluated checkpoint of a run (a re-evaluation replaces it),
    and an index of the epochs whose metrics hold the trainer's open-loop rollout errors."""
    _script(
        db,
        """
    create table evaluations (
        run_id text not null references runs(id) on delete cascade,
        checkpoint text not null,
        epoch integer,
        step integer,
        sha256 text,
        status text,
        created_at real,
        duration_s real,
        device text,
        horizon integer,
        episodes integer,
        planners text,
        plan_score real,
        rollout_z_visual_err real,
        oracle_ratio real,
        action_err real,
        rank_true_vs_random real,
        img_psnr real,
        metrics_json text,
        settings_json text,
        curves_json text,
        goals_json text,
        pictures_json text,
        primary key (run_id, checkpoint)
    );
    create index epochs_rollout on epochs(run_id, epoch) where instr(metrics_json, '_rollout') > 0
    """,
    )


@MIGRATIONS()
def m011_queue(db: sqlite_utils.Database) -> None:
    """The queue of runs to start one after another (dinowm.queue), its pause switch, and on a
    run the sweep and the queue entry it came from."""
    _script(
        db,
        """
    create table queue (
        id integer primary key,
        position integer not null,
        state text not null,
        preset text not null,
        name text,
        overrides_json text not null,
        config_json text not null,
        config_hash text,
        changed_json text,
        sweep_id text,
        run_id text,
        resumes integer not null default 0,
        added_at real not null,
        started_at real,
        ended_at real,
        reason text
    );
    create index queue_order on queue(state, position);
    create table queue_settings (
        key text primary key,
        value text
    );
    alter table runs add column sweep_id text;
    alter table runs add column queue_entry integer;
    create index runs_sweep on runs(sweep_id) where sweep_id is not null
    """,
    )

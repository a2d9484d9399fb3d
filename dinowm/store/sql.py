# SPDX-License-Identifier: MIT
"""SQL text of runs.db's queries, and the fold of raw telemetry samples into buckets."""

from __future__ import annotations

from typing import Any


def fold_samples(
    run_id: str, gpu: int, start: float, group: list[dict[str, Any]]
) -> dict[str, Any]:
    """One aggregated telemetry row from raw samples of one GPU and bucket."""

    def mean(key: str) -> float | None:
        values = [r[key] for r in group if r[key] is not None]
        return sum(values) / len(values) if values else None

    def count(key: str) -> int:
        return sum(1 for r in group if r[key] is not None)

    temps = [r["temp_c"] for r in group if r["temp_c"] is not None]
    throttle = 0
    for r in group:
        throttle |= r["throttle"] or 0
    return {
        "run_id": run_id,
        "t": start,
        "gpu": gpu,
        "n": len(group),
        "temp_c": mean("temp_c"),
        "temp_max_c": max(temps) if temps else None,
        "power_w": mean("power_w"),
        "power_limit_w": mean("power_limit_w"),
        "util_pct": mean("util_pct"),
        "mem_used_mib": mean("mem_used_mib"),
        "mem_total_mib": mean("mem_total_mib"),
        "sm_clock_mhz": mean("sm_clock_mhz"),
        "fan_pct": mean("fan_pct"),
        "throttle": throttle,
        "power_n": count("power_w"),
        "util_n": count("util_pct"),
    }


def _weighted_mean(column: str, count: str) -> str:
    """The mean of `column` over telemetry rows, each weighted by its sample count (aggregated
    rows hold a mean of several samples; a missing reading weighs nothing)."""
    return (
        f"sum({column} * coalesce({count}, n)) / nullif(sum(case when {column} is null "
        f"then 0 else coalesce({count}, n) end), 0)"
    )


TELEMETRY_SUMMARY_SQL = f"""
select max(coalesce(temp_max_c, temp_c)) as max_gpu_temp_c,
  {_weighted_mean("power_w", "power_n")} as mean_power_w,
  {_weighted_mean("util_pct", "util_n")} as mean_gpu_util,
  coalesce(sum(n), 0) as samples
from telemetry where run_id = ? and t >= ? and t <= ?
"""

GPU_SUMMARY_SQL = f"""
select gpu, max(coalesce(temp_max_c, temp_c)) as max_temp_c,
  {_weighted_mean("power_w", "power_n")} as mean_power_w,
  {_weighted_mean("util_pct", "util_n")} as mean_util,
  max(mem_used_mib) as max_mem_mib
from telemetry where run_id = ? and t >= ? and t <= ? group by gpu order by gpu
"""

# Per-run figures derived from the epochs and incidents tables, shared by the run views.
_DERIVED = """
  (select train_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_train_loss,
  (select val_loss from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_val_loss,
  (select z_err_pred from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_z_err_pred,
  (select min(z_err_pred) from epochs e where e.run_id = r.id) as best_z_err_pred,
  (select max(max_gpu_temp_c) from epochs e where e.run_id = r.id) as max_gpu_temp_c,
  (select count(*) from incidents i where i.run_id = r.id) as incident_count"""

# Every column of the run and the derived figures (dinowm show, runs).
RUN_SUMMARY_SQL = f"""
select r.*,{_DERIVED},
  (select min(val_loss) from epochs e where e.run_id = r.id) as best_val_loss
from runs r
"""

# The columns a runs table shows, without the bulky config (the TUI's poll).
RUN_TABLE_SQL = f"""
select r.id, r.name, r.preset, r.status, r.env, r.created_at, r.started_at, r.ended_at,
  r.updated_at, r.epochs_target, r.epoch, r.attempts, r.host, r.slurm_job_id, r.slurm_state,
  r.slurm_reason, r.slurm_nodes, r.slurm_restarts,{_DERIVED},
  (select mean_power_w from epochs e where e.run_id = r.id order by epoch desc limit 1)
    as last_mean_power_w
from runs r
"""

LATEST_TELEMETRY_SQL = """
with recursive g(gpu) as (
  select min(gpu) from telemetry where run_id = :r
  union all
  select (select min(gpu) from telemetry where run_id = :r and gpu > g.gpu) from g
  where g.gpu is not null)
select t.* from g join telemetry t on t.run_id = :r and t.gpu = g.gpu
  and t.t = (select max(t) from telemetry where run_id = :r and gpu = g.gpu)
order by t.gpu
"""

# SPDX-License-Identifier: MIT
"""TUI benchmark: first paint and one refresh tick of dinowm-tui on a large generated runs.db.

1,000 runs x 100 epochs and 1,000,000 telemetry rows, written with executemany; then the real
app (headless, 120x40) is timed from start until the runs table shows its rows, and one poll +
table update is timed after a run changed. Not a test: numbers go to bench/results/tui.json.

    .venv/bin/python bench/tui_bench.py [--dir DIR] [--out bench/results/tui.json]
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # a --child measures its first paint from here (imports count)

import argparse
import asyncio
import json
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dinowm.config import load_project, resolve, to_dict
from dinowm.store import Store

REPO = Path(__file__).resolve().parents[1]
RUNS, EPOCHS, TELEMETRY = 1000, 100, 1_000_000
STATUSES = ("completed",) * 6 + ("stopped", "failed", "lost", "running")


def generate(root: Path) -> dict[str, float]:
    """dinowm.toml + runs.db with RUNS x EPOCHS epochs and TELEMETRY samples; returns seconds."""
    shutil.copyfile(REPO / "dinowm" / "dinowm.toml", root / "dinowm.toml")
    project = load_project(root / "dinowm.toml")
    config_json = json.dumps(to_dict(resolve(project, "demo").config))
    start = time.perf_counter()
    Store(project.runs_db).close()  # schema and migrations
    rng = random.Random(0)
    t0 = 1_767_225_600.0  # 2026-01-01
    runs, epochs, incidents, notes, telemetry = [], [], [], [], []
    per_run = TELEMETRY // RUNS
    for i in range(RUNS):
        rid = run_id(i)
        created = t0 + i * 3600
        status = STATUSES[i % len(STATUSES)]
        done = EPOCHS if status == "completed" else rng.randrange(1, EPOCHS)
        ended = None if status == "running" else created + done * 30
        runs.append((rid, f"run-{i}", "demo", status, "synthetic_push", config_json, "abc",
                     "[]", "dinowm run --preset demo", str(root), str(root / "outputs" / rid),
                     created, created, ended, ended or created, EPOCHS, done, done * 10,
                     rng.randrange(1, 4), "localhost"))
        for e in range(1, done + 1):
            epochs.append((rid, e, 1, 1 / e, 1.1 / e, 0.5 / e, "{}", created + e * 30 - 30,
                           created + e * 30, 30.0, 10, 16, 50.0, 80 + e % 5, 200.0, 90.0))
        for k in range(i % 3):
            incidents.append((rid, created + k, "crash", 1, k, 0, f"crash {k}", "{}"))
        notes.append((rid, created, f"note of run {i}", "user"))
        for s in range(per_run):
            telemetry.append((rid, created + s, 0, 1, 60 + s % 20, 150.0 + s % 50, 300.0,
                              90.0, 8000.0, 81559.0, 1900.0, 40.0, 0))
    conn = sqlite3.connect(project.runs_db)
    with conn:
        conn.executemany(
            "insert into runs (id, name, preset, status, env, config_json, config_hash, "
            "overrides_json, command, cwd, run_dir, created_at, started_at, ended_at, "
            "updated_at, epochs_target, epoch, step, attempts, host) values "
            f"({','.join('?' * 20)})", runs)
        conn.executemany(
            "insert into epochs (run_id, epoch, attempt, train_loss, val_loss, z_err_pred, "
            "metrics_json, started_at, ended_at, duration_s, steps, batch_size, samples_per_s, "
            f"max_gpu_temp_c, mean_power_w, mean_gpu_util) values ({','.join('?' * 16)})",
            epochs)
        conn.executemany("insert into incidents (run_id, t, kind, attempt, epoch, step, "
                         "summary, details_json) values (?,?,?,?,?,?,?,?)", incidents)
        conn.executemany("insert into notes (run_id, t, text, source) values (?,?,?,?)", notes)
        conn.executemany(
            "insert into telemetry (run_id, t, gpu, n, temp_c, power_w, power_limit_w, "
            "util_pct, mem_used_mib, mem_total_mib, sm_clock_mhz, fan_pct, throttle) values "
            f"({','.join('?' * 13)})", telemetry)
    conn.close()
    return {"generate_s": round(time.perf_counter() - start, 2),
            "db_mib": round(project.runs_db.stat().st_size / 2**20, 1)}


async def first_paint(config: Path) -> tuple[float, float]:
    """Seconds from building the app until the runs table holds every run and was drawn,
    and the perf_counter() of that moment."""
    from tui.app import build_app
    from tui.screens.runs import RunsScreen
    from tui.widgets.runs_table import RunsTable

    start = time.perf_counter()
    app = build_app(config, gpu=None, poll_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, RunsScreen)
                   and app.screen.query_one(RunsTable).row_count == RUNS):
            await pilot.pause(0.002)
        await pilot.pause()  # let the compositor draw it
        end = time.perf_counter()
        return end - start, end


async def measure(root: Path, reps: int) -> dict[str, object]:
    """First paint (in-process and in a fresh interpreter) and refresh ticks, in ms."""
    from tui.app import build_app
    from tui.feed import fetch_runs
    from tui.screens.runs import RunsScreen
    from tui.widgets.runs_table import RunsTable

    config = root / "dinowm.toml"
    warm = [(await first_paint(config))[0] * 1000 for _ in range(reps)]
    cold = []
    for _ in range(reps):
        begin = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child", str(config)], check=True,
                             capture_output=True, text=True, cwd=REPO)
        cold.append({"wall_ms": (time.perf_counter() - begin) * 1000,
                     "paint_ms": float(out.stdout.split()[-1])})
    ticks, idle = [], []
    app = build_app(config, gpu=None, poll_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        while not (isinstance(app.screen, RunsScreen)
                   and app.screen.query_one(RunsTable).row_count == RUNS):
            await pilot.pause(0.01)
        screen = app.screen
        for k in range(20):
            conn = sqlite3.connect(root / "runs.db")
            with conn:  # a run moves on, as its supervisor writes it
                conn.execute("update runs set step = step + 1, epoch = ?, updated_at = ? "
                             "where id = ?", [k % EPOCHS, time.time(), run_id(k * 7)])
            conn.close()
            for sink in (ticks, idle):  # one poll + table update; then one with no change
                begin = time.perf_counter()
                screen.apply(fetch_runs(app.services, dict(screen.known)))
                table = screen.query_one(RunsTable)
                for y in range(table.size.height):  # the table's repaint
                    table.render_line(y)
                sink.append((time.perf_counter() - begin) * 1000)
                await pilot.pause()
    return {"first_paint_ms": _stats(warm),
            "first_paint_fresh_process_ms": {
                "wall_median": round(statistics.median(c["wall_ms"] for c in cold), 1),
                "since_interpreter_start_median": round(
                    statistics.median(c["paint_ms"] for c in cold), 1),
                "reps": reps},
            "refresh_tick_ms": _stats(ticks), "refresh_tick_unchanged_ms": _stats(idle)}


def run_id(i: int) -> str:
    return f"2026{i:04d}-000000-{i:04x}"


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1),
            "reps": len(values)}


def main() -> None:
    """Generate, measure, write the JSON."""
    if sys.argv[1:2] == ["--child"]:  # a fresh interpreter: imports count, as for the user
        print(round((asyncio.run(first_paint(Path(sys.argv[2])))[1] - T_START) * 1000, 1))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="keep the generated project here")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tui.json")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="tui-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    gen = generate(root) if not (root / "runs.db").exists() else {"generate_s": None}
    result = {"what": f"dinowm-tui on {RUNS} runs x {EPOCHS} epochs, {TELEMETRY:,} telemetry "
                      f"rows, headless 120x40",
              **gen, **asyncio.run(measure(root, args.reps)),
              "limits_ms": {"first_paint": 1000, "refresh_tick": 50},
              "load_average": [round(x, 2) for x in __import__("os").getloadavg()],
              "machine": {"python": platform.python_version(), "cpu": platform.processor()
                          or platform.machine(), "cores": __import__("os").cpu_count()}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

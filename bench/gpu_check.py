# SPDX-License-Identifier: MIT
"""GPU check (issue: GPU speed): one run of under 8 minutes on one H200, one table at the end.

1. `dinowm bench --variants fast,fast:decoder_every=4,fast:decoder=off,reference` at batch 8,
   16 and 32 at the full franka_f5_h3 model size (synthetic 224 px data, full-size encoder
   with random weights): s/step, achieved TFLOP/s and its share of the card's dense BF16
   peak, each variant against reference.
2. `dinowm bench --profile` of fast at batch 32: the step's parts and torch.profiler's top
   ops, saved next to --out as profile_<gpu>.txt and .json.
3. 16 GiB: a short real `dinowm run` at batch 32 under DINOWM_MEMORY_CAP_GIB=16 (a few steps,
   one epoch, validation included) with its status and peak memory, and
   `dinowm probe --mem-cap-gib 16` from batch 32.
4. Frozen-feature cache equivalence at full size: losses with and without cached tokens.
5. A short supervised `dinowm run` with GPU telemetry, what runs.db recorded, and one CEM
   plan at the public defaults on its checkpoint; on 2+ GPUs the same run under DDP.
The parts run in this order while --budget-s lasts; one that would not fit is skipped and
says so. Writes everything to --out (JSON). `--tiny` runs the same path on CPU (a smoke test
of this script, not a measurement); `--print JSON` prints the table of an earlier run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = ["model.encoder=tiny", "model.img_size=64", "model.encoder_img_size=56",
        "model.predictor_depth=1", "model.decoder_channels=32", "data.num_workers=0"]
VARIANTS = "fast,fast:decoder_every=4,fast:decoder=off,reference"
# Each speed lever alone against fast (its defaults on), at batch 32: compile (and CUDA graphs
# through reduce-overhead) with its compile time, channels-last and inference_mode turned off.
LEVERS = ("fast,fast:compile=true,fast:compile=true:compile_mode=reduce-overhead,"
          "fast:channels_last=false,fast:encoder_inference_mode=false")
STEPS_PER_EPOCH = 516  # franka_f5_h3 at batch 32
CAP_GIB = 16
# Seconds each part takes on one H200 (measured parts, rounded up): a part starts only when
# the budget has that much left.
NEED = {"bench": 200, "profile": 40, "capped_run": 60, "probe": 100, "levers": 180,
        "cache": 15, "run": 60, "prefetch": 60, "plan": 60, "ddp": 90}


class Clock:
    """The run's time budget: what is left, and whether a part still fits."""

    def __init__(self, budget_s: float) -> None:
        self.start, self.budget_s = time.time(), budget_s

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - (time.time() - self.start)

    def skip(self, part: str) -> dict | None:
        """None when `part` fits the time left, else why it is skipped."""
        if self.left() >= NEED[part]:
            return None
        return {"skipped": f"{self.left():.0f} s of the budget left, {part} needs about "
                           f"{NEED[part]} s"}


def sh(*args: str, cwd: Path, timeout: float = 600,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "PYTHONUNBUFFERED": "1",
        **(env or {})}
    try:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=full, capture_output=True,
                              text=True, timeout=max(timeout, 30))
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, 124, _text(exc.stdout),
                                           _text(exc.stderr) + f"\ntimed out after {timeout:.0f} s")


def _text(out: str | bytes | None) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else out or ""


def slug(device: str) -> str:
    """A file-name part for a device name: 'NVIDIA H100 80GB HBM3' → 'h100_80gb_hbm3'."""
    return re.sub(r"[^a-z0-9]+", "_", device.lower().replace("nvidia", "")).strip("_") or "gpu"


def bench(project: Path, base: list[str], batches: str, steps: int, work: Path,
          clock: Clock) -> dict:
    """Every variant at every batch, side by side (dinowm bench --variants)."""
    path = work / "bench.json"
    out = sh("-m", "dinowm", "bench", "--preset", "franka_f5_h3", "--batch", batches,
             "--variants", VARIANTS, "--steps", str(steps), "--json", str(path), *base,
             cwd=project, timeout=clock.left())
    print(out.stdout[-4000:], flush=True)
    return json.loads(path.read_text()) if path.exists() else {"error": out.stderr[-2000:]}


def levers(project: Path, base: list[str], batch: int, steps: int, work: Path,
           clock: Clock) -> dict:
    """Each lever alone at `batch`; a compiled variant's 10-epoch gain counts its compile time
    (the warm-up beyond measured steps): what decides whether compile is on by default."""
    path = work / "levers.json"
    out = sh("-m", "dinowm", "bench", "--preset", "franka_f5_h3", "--batch", str(batch),
             "--variants", LEVERS, "--steps", str(steps), "--warmup", "3", "--json", str(path),
             *base, cwd=project, timeout=clock.left())
    print(out.stdout[-3000:], flush=True)
    if not path.exists():
        return {"error": (out.stderr or out.stdout)[-1500:]}
    result = json.loads(path.read_text())
    rows = [r for r in result.get("rows", []) if r.get("status") == "ok"]
    fast = next((r for r in rows if r.get("variant") == "fast"), None)
    for r in rows:
        if fast is not None and r is not fast:
            saved = (fast["s_per_step"] - r["s_per_step"]) * 10 * STEPS_PER_EPOCH
            r["ten_epoch_gain_s"] = saved - max(0.0, r["warmup_s"] - fast["warmup_s"])
    return result


def profile(project: Path, base: list[str], batch: int, steps: int, stem: Path,
            clock: Clock) -> dict:
    """fast at `batch`: the step's parts and the top ops, written to STEM.txt and STEM.json."""
    out = sh("-m", "dinowm", "bench", "--preset", "franka_f5_h3", "--batch", str(batch),
             "--steps", str(steps), "--profile", str(stem), *base, cwd=project,
             timeout=clock.left())
    print(out.stdout[-3000:], flush=True)
    path = stem.with_name(stem.name + ".json")
    return json.loads(path.read_text()) if out.returncode == 0 and path.exists() else {
        "error": (out.stderr or out.stdout)[-1500:]}


def probe_capped(project: Path, base: list[str], min_batch: int, work: Path,
                 clock: Clock) -> dict:
    """`dinowm probe --mem-cap-gib 16` from min_batch up to twice that."""
    path = work / "probe.json"
    out = sh("-m", "dinowm", "probe", "--preset", "franka_f5_h3", "--mem-cap-gib",
             str(CAP_GIB), "--min-batch", str(min_batch), "--max-batch", str(2 * min_batch),
             "--json", str(path), *base, cwd=project, timeout=clock.left())
    print(out.stdout[-2000:], flush=True)
    return json.loads(path.read_text()) if path.exists() else {
        "error": (out.stderr or out.stdout)[-1500:]}


def cache_check(project: Path, overrides: list[str]) -> dict:
    """Same batches through the model with and without the frozen-feature cache."""
    import torch

    from dinowm.config import load_project, resolve
    from dinowm.model.build import build_model
    from dinowm.train.state import seed_everything
    from dinowm.data.datasets import build_datasets, prepare_frames
    from dinowm.data.features import TokenStore, build_cache

    cfg = resolve(load_project(project / "dinowm.toml"), "franka_f5_h3", overrides).config
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, val, _, info = build_datasets(cfg.data.path, frameskip=cfg.frameskip,
                                         num_hist=cfg.num_hist, num_pred=cfg.num_pred)
    seed_everything(0)
    model = build_model(cfg, info["proprio_dim"], info["sample_action_dim"]).to(device).eval()
    t0 = time.perf_counter()
    folder = build_cache(model, val, project / "cache", device)
    build_s = time.perf_counter() - t0
    val.tokens = TokenStore(folder)
    batch = [val[i] for i in range(0, min(len(val), 64), 4)][:16]
    stacked = {k: torch.stack([b[k] for b in batch]).to(device) for k in batch[0]}
    visual = prepare_frames(stacked["visual"], cfg.model.img_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.no_grad(), autocast:
        plain = model(visual, stacked["proprio"], stacked["action"])
        cached = model(visual, stacked["proprio"], stacked["action"], tokens=stacked["tokens"])
    rel = {k: abs(float(plain[k]) - float(cached[k])) / max(abs(float(plain[k])), 1e-12)
           for k in ("loss", "z_loss", "decoder_recon_loss_reconstructed")}
    return {"frames_cached": sum(val.lengths), "build_s": build_s, "relative_diff": rel,
            "within_bf16_tolerance": all(v < 2e-2 for v in rel.values())}


def supervised(project: Path, overrides: list[str], timeout: float,
               env: dict[str, str] | None = None) -> dict:
    """A real supervised run, then what runs.db holds about it (and its log's cap line)."""
    from dinowm import rundir

    t0 = time.time()
    out = sh("-m", "dinowm", "run", "--preset", "franka_f5_h3", *overrides, cwd=project,
             timeout=timeout, env=env)
    conn = sqlite3.connect(project / "runs.db")
    conn.row_factory = sqlite3.Row
    run = dict(conn.execute("select * from runs order by created_at desc limit 1").fetchone())
    epochs = [dict(r) for r in conn.execute("select * from epochs where run_id = ? order by "
                                            "epoch", [run["id"]])]
    tel = dict(conn.execute("select count(*) n, max(temp_c) tmax, avg(power_w) pmean, "
                            "max(power_w) pmax, avg(util_pct) umean, max(mem_used_mib) mem, "
                            "max(power_limit_w) plimit from telemetry where run_id = ?",
                            [run["id"]]).fetchone())
    reasons = 0
    for (mask,) in conn.execute("select throttle from telemetry where run_id = ?", [run["id"]]):
        reasons |= mask or 0
    from dinowm.supervise.telemetry import throttle_names

    log = Path(run["run_dir"] or "") / rundir.LOG
    cap_lines = [line for line in (log.read_text().splitlines() if log.is_file() else [])
                 if "DINOWM_MEMORY_CAP_GIB" in line]
    return {"rc": out.returncode, "status": run["status"], "wall_s": time.time() - t0,
            "epochs": len(epochs), "samples_per_s": [e["samples_per_s"] for e in epochs],
            "steps": [e["steps"] for e in epochs],
            "peak_gpu_mem_mib": max((e["peak_gpu_mem_mib"] or 0) for e in epochs) if epochs
            else None, "epoch_max_temp_c": [e["max_gpu_temp_c"] for e in epochs],
            "epoch_mean_power_w": [e["mean_power_w"] for e in epochs], "telemetry": tel,
            "throttle_reasons": throttle_names(reasons), "run_id": run["id"],
            "memory_cap_log": cap_lines[-1:], "stdout_tail": out.stdout[-1500:],
            "stderr_tail": out.stderr[-1500:]}


def plan_check(project: Path, run_id: str, tiny: bool, clock: Clock) -> dict:
    """One CEM plan at the public defaults (300 samples, top 30, 30 iterations, horizon 5) on
    the supervised run's latest checkpoint: one goal alone, then 8 goals batched together."""
    rows: dict = {}
    for goals in (1, 8):
        t0 = time.time()
        args = ["--episodes", str(goals), "--planner", "cem", "--json", "--quiet"]
        if tiny:
            args += ["--horizon", "2", "--cem-iterations", "3"]
        out = sh("-m", "dinowm", "eval", run_id, *args, cwd=project, timeout=clock.left())
        try:
            metrics = json.loads(out.stdout)[0]["metrics"]
        except (ValueError, IndexError, KeyError):
            rows[goals] = {"error": (out.stderr or out.stdout)[-800:]}
            continue
        rows[goals] = {"s_per_plan": metrics["cem_seconds"], "wall_s": time.time() - t0,
                       "rank_true_vs_random": metrics["rank_true_vs_random"]}
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/dinowm_gpu_check"))
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON; the profile goes next to it (default: "
                         "bench/results/gpu_check.json, with --tiny WORK/gpu_check.json)")
    ap.add_argument("--steps", type=int, default=10, help="measured steps per bench trial")
    ap.add_argument("--run-epochs", type=int, default=4,
                    help="epochs of the supervised telemetry run")
    ap.add_argument("--budget-s", type=float, default=450,
                    help="parts start only while this many seconds last (default 450)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of this script")
    ap.add_argument("--print", dest="print_json", type=Path, default=None, metavar="JSON",
                    help="print the table of an earlier run's JSON and exit")
    args = ap.parse_args()
    if args.print_json:
        print_table(json.loads(args.print_json.read_text()))
        return 0
    if args.out is None:  # a smoke test never overwrites the measured results
        args.out = args.work / "gpu_check.json" if args.tiny else \
            REPO / "bench" / "results" / "gpu_check.json"
    result = run_all(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print_table(result)
    run, capped, ddp = result["run"], result["capped_run"], result["ddp"]
    ok = result["cache"].get("within_bf16_tolerance", True) and \
        run.get("status", "completed") == "completed" and \
        capped.get("status", "completed") == "completed" and \
        ddp.get("run", {"status": "completed"})["status"] == "completed"
    return 0 if ok else 1


def run_all(args: argparse.Namespace) -> dict:
    """Every part while the budget lasts; a skipped part records why."""
    import torch

    from dinowm.model.encoder import build_encoder
    from dinowm.data.synth import write_synthetic_dataset

    clock = Clock(args.budget_s if not args.tiny else 3600)
    project = args.work / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "dinowm.toml").write_text((REPO / "dinowm.toml").read_text())
    size = 64 if args.tiny else 224
    data = args.work / f"data_{size}"
    if not data.exists():
        write_synthetic_dataset(data, episodes=8, length=120, image_size=size, seed=0)
    weights = args.work / "dinov2_vits14_random.pth"
    if not weights.exists():
        torch.save(build_encoder("dinov2_vits14", 196, 64, 2, 4).state_dict(), weights)
    base = [f"data.path={data}", f"model.encoder_weights={weights}", "data.split_ratio=0.875"]
    if args.tiny:
        base += TINY
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    result: dict = {"device": device, "torch": torch.__version__, "budget_s": clock.budget_s}
    batch = 4 if args.tiny else 32
    steps = 2 if args.tiny else args.steps

    t0 = time.time()
    result["bench"] = clock.skip("bench") or bench(
        project, base, "4" if args.tiny else "8,16,32", steps, args.work, clock)
    result["bench_s"] = time.time() - t0
    stem = args.out.parent / f"profile_{slug(device)}"
    result["profile"] = clock.skip("profile") or profile(project, base, batch, steps, stem,
                                                         clock)
    # on the CPU (--tiny) the trainer ignores the cap with a log line and probe refuses it
    result["capped_run"] = clock.skip("capped_run") or {"batch": batch, **supervised(
        project, [*base, "training.epochs=1", "training.max_steps_per_epoch=3",
                  f"training.batch_size={batch}", "data.num_workers=" + (
                      "0" if args.tiny else "6")],
        clock.left(), env={"DINOWM_MEMORY_CAP_GIB": str(CAP_GIB)})}
    result["probe"] = clock.skip("probe") or probe_capped(project, base, batch, args.work,
                                                          clock)
    result["levers"] = clock.skip("levers") or levers(project, base, batch, steps, args.work,
                                                      clock)
    t0 = time.time()
    result["cache"] = clock.skip("cache") or cache_check(project, base)
    result["cache_s"] = time.time() - t0
    epochs = 2 if args.tiny else args.run_epochs
    result["run"] = clock.skip("run") or supervised(
        project, [*base, f"training.epochs={epochs}", "data.num_workers=" + (
            "0" if args.tiny else "6"), "telemetry.interval_s=1"], clock.left())
    # perf.prefetch acts in the real loop only: the same run with it on, samples/s against
    result["prefetch"] = clock.skip("prefetch") or supervised(
        project, [*base, f"training.epochs={epochs}", "data.num_workers=" + (
            "0" if args.tiny else "6"), "perf.prefetch=true"], clock.left())
    if "run_id" not in result["run"]:
        result["plan"] = {"skipped": "no supervised run to plan with"}
    else:
        result["plan"] = clock.skip("plan") or plan_check(project, result["run"]["run_id"],
                                                          args.tiny, clock)
    gpus = torch.cuda.device_count()
    if gpus >= 2 and not args.tiny:  # the same run on every GPU: scaling against one
        ranks = min(gpus, 8)
        result["ddp"] = clock.skip("ddp") or {"ranks": ranks, "run": supervised(
            project, [*base, f"training.epochs={epochs}", "data.num_workers=4",
                      "telemetry.interval_s=1", f"dist.nproc_per_node={ranks}"],
            clock.left())}
        if "run" in result["ddp"] and "samples_per_s" in result["run"]:
            one = max(result["run"]["samples_per_s"] or [0])
            many = max(result["ddp"]["run"]["samples_per_s"] or [0])
            result["ddp"]["efficiency"] = many / (ranks * one) if one else None
    else:
        result["ddp"] = {"skipped": f"{gpus} GPU{'s' * (gpus != 1)} here: the DDP check needs "
                                    f"at least 2"}
    result["wall_s"] = time.time() - clock.start
    return result


def print_table(r: dict) -> None:
    """The results in one short table and a few lines, whatever parts ran."""
    print(f"\n== dinowm GPU check: {r['device']}, torch {r['torch']}, "
          f"{r.get('wall_s', 0):.0f} s ==")
    b = r["bench"]
    if "rows" in b:
        print(f"{'batch':>5}  {'variant':<22}{'s/step':>9}{'samples/s':>11}{'TFLOP/s':>9}"
              f"{'%peak':>7}{'train GiB':>10}{'val GiB':>8}{'vs ref':>8}")
        for row in sorted(b["rows"], key=lambda x: x["batch"]):
            name = row.get("variant", row["mode"])
            if row.get("status") != "ok":
                print(f"{row['batch']:>5}  {name:<22}{row.get('status')}: "
                      f"{row.get('error', '')[:60]}")
                continue
            print(f"{row['batch']:>5}  {name:<22}{row['s_per_step']:>9.4f}"
                  f"{row['samples_per_s']:>11.1f}{_f(row.get('achieved_tflops'), '9.1f')}"
                  f"{_f(row.get('pct_of_peak'), '7.1f')}{row['train_peak_mib'] / 1024:>10.2f}"
                  f"{row['val_peak_mib'] / 1024:>8.2f}{_f(row.get('vs_reference'), '7.2f')}x")
        ok = next((x for x in b["rows"] if x.get("status") == "ok"), {})
        print(f"% peak of {ok.get('peak_card')} {ok.get('peak_tflops')} TFLOP/s dense BF16 "
              f"(vendor datasheet)" if ok.get("peak_tflops") else
              f"% peak: {ok.get('peak_note', 'no trial finished')}")
    else:
        print(f"bench: {_why(b)}")
    p = r["profile"]
    if "components" in p:
        parts = ", ".join(f"{c['name']} {c['share']:.0%}" for c in p["components"])
        print(f"profile {p.get('variant', p['mode'])} batch {p['batch']}: step "
              f"{p['step_s']:.4f} s = {parts} -> {p['files']['txt']}")
    else:
        print(f"profile: {_why(p)}")
    c = r["capped_run"]
    if "status" in c:
        log = re.sub(r"^\S+ \S+ ", "", (c.get("memory_cap_log") or ["no cap line in "
                                                                      "train.log"])[0])
        print(f"16 GiB run at batch {c['batch']}: {c['status']}, {sum(c['steps'])} steps + "
              f"validation, peak {(c['peak_gpu_mem_mib'] or 0) / 1024:.2f} GiB ({log})")
    else:
        print(f"16 GiB run: {_why(c)}")
    pr = r["probe"]
    if "rows" in pr:
        peaks = {x["batch"]: x.get("peak_mib") for x in pr["rows"]}
        best = pr.get("largest_fitting_batch")
        seen = f" (peak {peaks[best] / 1024:.2f} GiB)" if best and peaks.get(best) else ""
        print(f"16 GiB probe: largest batch that fits {best}{seen}, trials "
              f"{sorted(peaks)}")
    else:
        print(f"16 GiB probe: {_why(pr)}")
    lv = r.get("levers", {"skipped": "not in this run"})
    for row in lv.get("rows", []):
        if row.get("status") != "ok":
            print(f"lever {row.get('variant')}: {row.get('status')} {row.get('error', '')[:60]}")
            continue
        gain = row.get("ten_epoch_gain_s")
        print(f"lever {row.get('variant'):<48} {row['s_per_step']:.4f} s/step, warm-up "
              f"{row['warmup_s']:.1f} s" + ("" if gain is None else
                                             f", 10 franka epochs {gain:+.0f} s against fast"))
    if "rows" not in lv:
        print(f"levers: {_why(lv)}")
    c = r["cache"]
    if "relative_diff" in c:
        print(f"feature cache: {c['frames_cached']} frames in {c['build_s']:.1f} s, relative "
              f"loss diff {max(c['relative_diff'].values()):.2e} -> "
              f"{'OK' if c['within_bf16_tolerance'] else 'MISMATCH'}")
    else:
        print(f"feature cache: {_why(c)}")
    run = r["run"]
    if "status" in run:
        tel = run["telemetry"]
        print(f"supervised run: {run['status']} in {run['wall_s']:.0f} s, {run['epochs']} "
              f"epochs, peak {(run['peak_gpu_mem_mib'] or 0) / 1024:.2f} GiB, samples/s "
              f"{max(run['samples_per_s'] or [0]):.0f}")
        print(f"telemetry: {tel['n']} samples, max {tel['tmax']} C, mean {tel['pmean'] or 0:.0f}"
              f" W (max {tel['pmax'] or 0:.0f} of {tel['plimit'] or 0:.0f} W), util "
              f"{tel['umean'] or 0:.0f}%, reasons {run['throttle_reasons']}")
    else:
        print(f"supervised run: {_why(run)}")
    pf = r.get("prefetch", {"skipped": "not in this run"})
    if "status" in pf and "samples_per_s" in run:
        print(f"perf.prefetch=true: {pf['status']}, samples/s {max(pf['samples_per_s'] or [0]):.0f}"
              f" against {max(run['samples_per_s'] or [0]):.0f} without")
    elif "status" not in pf:
        print(f"perf.prefetch: {_why(pf)}")
    plan = r["plan"]
    for goals, row in (plan.items() if "skipped" not in plan else []):
        if "error" in row:
            print(f"CEM plan, {goals} goal(s): error {row['error'][-200:]}")
        else:
            print(f"CEM plan at the public defaults, {goals} goal(s) batched: "
                  f"{row['s_per_plan']:.3f} s per goal ({row['wall_s']:.0f} s for the whole eval)")
    if "skipped" in plan:
        print(f"CEM plan: {_why(plan)}")
    ddp = r["ddp"]
    if "run" in ddp:
        d = ddp["run"]
        eff = f"{ddp['efficiency']:.0%}" if ddp.get("efficiency") else "-"
        print(f"DDP check: {ddp['ranks']} ranks {d['status']} in {d['wall_s']:.0f} s, samples/s "
              f"{max(d['samples_per_s'] or [0]):.0f} (scaling efficiency {eff} against one "
              f"GPU), peak {(d['peak_gpu_mem_mib'] or 0) / 1024:.2f} GiB")
    else:
        print(f"DDP check: {_why(ddp)}")


def _f(value: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{value:>{spec}}" if value is not None else f"{'-':>{width}}"


def _why(part: dict) -> str:
    """A part that did not run or failed, in a few words."""
    if "skipped" in part:
        return f"skipped ({part['skipped']})"
    return f"failed: {str(part.get('error', part)).strip()[-200:]}"


if __name__ == "__main__":
    sys.exit(main())

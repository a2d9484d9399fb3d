"""GPU check (issue: speed and memory): one short table, under 5 minutes on one GPU.

1. `dinowm bench` at batch 8, 16, 32 in fast and reference modes at the full franka_f5_h3
   model size (synthetic 224 px data, full-size encoder with random weights).
2. Frozen-feature cache equivalence at full size: losses with and without cached tokens.
3. A ~60 s supervised `dinowm run` with GPU telemetry, then what runs.db recorded.
Writes everything to --out (JSON) and prints one table at the end. `--tiny` runs the same path
on CPU in a minute (a smoke test of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = ["model.encoder=tiny", "model.img_size=64", "model.encoder_img_size=56",
        "model.predictor_depth=1", "model.decoder_channels=32", "data.num_workers=0"]


def sh(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cache_check(project: Path, overrides: list[str]) -> dict:
    """Same batches through the model with and without the frozen-feature cache."""
    import torch

    from dinowm.config import load_project, resolve
    from dinowm.train.build import build_model, seed_everything
    from dinowm.train.data import build_datasets, prepare_frames
    from dinowm.train.features import TokenStore, build_cache

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


def supervised(project: Path, overrides: list[str], seconds: float) -> dict:
    """A real supervised run for about `seconds`, then what runs.db holds about it."""
    t0 = time.time()
    out = sh("-m", "dinowm", "run", "--preset", "franka_f5_h3", *overrides, cwd=project,
             timeout=seconds * 4 + 120)
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

    return {"rc": out.returncode, "status": run["status"], "wall_s": time.time() - t0,
            "epochs": len(epochs), "samples_per_s": [e["samples_per_s"] for e in epochs],
            "peak_gpu_mem_mib": max((e["peak_gpu_mem_mib"] or 0) for e in epochs) if epochs
            else None, "epoch_max_temp_c": [e["max_gpu_temp_c"] for e in epochs],
            "epoch_mean_power_w": [e["mean_power_w"] for e in epochs], "telemetry": tel,
            "throttle_reasons": throttle_names(reasons), "run_id": run["id"],
            "stdout_tail": out.stdout[-1500:],
            "stderr_tail": out.stderr[-1500:]}


def plan_check(project: Path, run_id: str, tiny: bool) -> dict:
    """One CEM plan at the public defaults (300 samples, top 30, 30 iterations, horizon 5) on
    the supervised run's latest checkpoint: one goal alone, then 8 goals batched together."""
    rows = {}
    for goals in (1, 8):
        t0 = time.time()
        args = ["--episodes", str(goals), "--planner", "cem", "--json", "--quiet"]
        if tiny:
            args += ["--horizon", "2", "--cem-iterations", "3"]
        out = sh("-m", "dinowm", "eval", run_id, *args, cwd=project)
        try:
            metrics = json.loads(out.stdout)[0]["metrics"]
        except (ValueError, IndexError, KeyError):
            rows[goals] = {"error": (out.stderr or out.stdout)[-800:]}
            continue
        rows[goals] = {"s_per_plan": metrics["cem_seconds"], "wall_s": time.time() - t0,
                       "rank_true_vs_random": metrics["rank_true_vs_random"]}
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/dinowm_gpu_check"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--run-epochs", type=int, default=12)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of this script")
    args = ap.parse_args()
    import torch

    from dinowm.train.encoder import build_encoder
    from dinowm.train.synth import write_synthetic_dataset

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
    result: dict = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else "cpu", "torch": torch.__version__}

    t0 = time.time()
    batches = "4" if args.tiny else "8,16,32"
    bench_json = args.work / "bench.json"
    out = sh("-m", "dinowm", "bench", "--preset", "franka_f5_h3", "--batch", batches,
             "--steps", str(args.steps), "--json", str(bench_json), *base, cwd=project)
    result["bench"] = json.loads(bench_json.read_text()) if bench_json.exists() else {
        "error": out.stderr[-2000:]}
    result["bench_s"] = time.time() - t0
    print(out.stdout[-3000:], flush=True)

    # perf.channels_last alone: the same fast trial with the setting off (on is the default).
    off_json = args.work / "bench_channels_first.json"
    sh("-m", "dinowm", "bench", "--preset", "franka_f5_h3", "--batch", batches.split(",")[-1],
       "--mode", "fast", "--steps", str(args.steps), "--json", str(off_json), *base,
       "perf.channels_last=false", cwd=project)
    result["channels_first"] = json.loads(off_json.read_text()) if off_json.exists() else None

    t0 = time.time()
    result["cache"] = cache_check(project, base)
    result["cache_s"] = time.time() - t0
    print(json.dumps(result["cache"]), flush=True)

    epochs = 2 if args.tiny else args.run_epochs
    result["run"] = supervised(project, [*base, f"training.epochs={epochs}",
                                         "data.num_workers=" + ("0" if args.tiny else "6"),
                                         "telemetry.interval_s=1"], 60)
    result["plan"] = plan_check(project, result["run"]["run_id"], args.tiny)
    gpus = torch.cuda.device_count()
    if gpus >= 2 and not args.tiny:  # the same run on every GPU: scaling against one
        ranks = min(gpus, 8)
        result["ddp"] = {"ranks": ranks, "run": supervised(
            project, [*base, f"training.epochs={epochs}", "data.num_workers=4",
                      "telemetry.interval_s=1", f"dist.nproc_per_node={ranks}"], 60)}
        one = max(result["run"]["samples_per_s"] or [0])
        many = max(result["ddp"]["run"]["samples_per_s"] or [0])
        result["ddp"]["efficiency"] = many / (ranks * one) if one else None
    else:
        result["ddp"] = {"skipped": f"{gpus} GPU{'s' * (gpus != 1)} here: the DDP check needs "
                                    f"at least 2"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    _print_table(result)
    ok = result["run"]["status"] == "completed" and result["cache"]["within_bf16_tolerance"] \
        and result["ddp"].get("run", {"status": "completed"})["status"] == "completed"
    return 0 if ok else 1


def _print_table(r: dict) -> None:
    print(f"\n== dinowm GPU check: {r['device']}, torch {r['torch']} ==")
    print(f"{'mode':<10}{'batch':>6}{'s/step':>9}{'samples/s':>11}{'train GiB':>11}"
          f"{'val GiB':>9}{'loader/s':>10}")
    for row in r["bench"].get("rows", []):
        if row.get("status") != "ok":
            print(f"{row['mode']:<10}{row['batch']:>6}  {row.get('status')}: "
                  f"{row.get('error', '')[:60]}")
            continue
        print(f"{row['mode']:<10}{row['batch']:>6}{row['s_per_step']:>9.4f}"
              f"{row['samples_per_s']:>11.1f}{row['train_peak_mib'] / 1024:>11.2f}"
              f"{row['val_peak_mib'] / 1024:>9.2f}{row['loader_samples_per_s']:>10.0f}")
    print("reference/fast step time:", r["bench"].get("speedup_fast_over_reference"))
    off = [x for x in (r.get("channels_first") or {}).get("rows", []) if x.get("status") == "ok"]
    on = [x for x in r["bench"].get("rows", []) if x.get("status") == "ok"
          and x["mode"] == "fast" and off and x["batch"] == off[0]["batch"]]
    if off and on:
        print(f"perf.channels_last at batch {off[0]['batch']}: off {off[0]['s_per_step']:.4f} "
              f"s/step, on {on[0]['s_per_step']:.4f} s/step (off/on "
              f"{off[0]['s_per_step'] / on[0]['s_per_step']:.2f}x)")
    c = r["cache"]
    print(f"feature cache: {c['frames_cached']} frames in {c['build_s']:.1f} s, relative loss "
          f"diff {max(c['relative_diff'].values()):.2e} -> "
          f"{'OK' if c['within_bf16_tolerance'] else 'MISMATCH'}")
    run, tel = r["run"], r["run"]["telemetry"]
    print(f"supervised run: {run['status']} in {run['wall_s']:.0f} s, {run['epochs']} epochs, "
          f"peak {(run['peak_gpu_mem_mib'] or 0) / 1024:.2f} GiB, samples/s "
          f"{max(run['samples_per_s'] or [0]):.0f}")
    print(f"telemetry: {tel['n']} samples, max {tel['tmax']} C, mean {tel['pmean'] or 0:.0f} W "
          f"(max {tel['pmax'] or 0:.0f} of {tel['plimit'] or 0:.0f} W), util "
          f"{tel['umean'] or 0:.0f}%, reasons {run['throttle_reasons']}")
    for goals, row in r["plan"].items():
        if "error" in row:
            print(f"CEM plan, {goals} goal(s): error {row['error'][-200:]}")
        else:
            print(f"CEM plan at the public defaults, {goals} goal(s) batched: "
                  f"{row['s_per_plan']:.3f} s per goal ({row['wall_s']:.0f} s for the whole eval)")
    ddp = r["ddp"]
    if "skipped" in ddp:
        print(f"DDP check: did not run ({ddp['skipped']})")
    else:
        d = ddp["run"]
        eff = f"{ddp['efficiency']:.0%}" if ddp.get("efficiency") else "-"
        print(f"DDP check: {ddp['ranks']} ranks {d['status']} in {d['wall_s']:.0f} s, samples/s "
              f"{max(d['samples_per_s'] or [0]):.0f} (scaling efficiency {eff} against one "
              f"GPU), peak {(d['peak_gpu_mem_mib'] or 0) / 1024:.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
